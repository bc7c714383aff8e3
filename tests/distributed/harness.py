"""Test helper: run a scenario of tests/distributed/workers.py in N processes, as torchrun would.

Each rank is a subprocess with torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT) set; the whole group is killed when `timeout` passes, so a hang fails the test
instead of the suite. Each rank leaves its results in `<out>/rank<r>.npz` (arrays) and
`<out>/rank<r>.json` (anything else).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
WORKERS = Path(__file__).with_name("workers.py")


@dataclass
class RankResult:
    returncode: int | None         # None: killed at the timeout
    output: str                    # stdout and stderr
    arrays: dict
    info: dict


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_env(rank: int, world: int, port: int) -> dict:
    env = dict(os.environ)
    env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    return env


def run_ranks(scenario: str, out: Path, world: int = 2, timeout: float = 60.0,
              script: Path = WORKERS) -> list:
    """Run `scenario` of `script` on `world` ranks; the RankResult of each, in rank order."""
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    procs = []
    for rank in range(world):
        log = open(out / f"rank{rank}.log", "w+")
        procs.append((subprocess.Popen([sys.executable, str(script), scenario, str(out)],
                                       env=launch_env(rank, world, port), cwd=REPO, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + timeout
    codes: list = [None] * world
    while time.monotonic() < deadline and any(c is None for c in codes):
        codes = [p.poll() for p, _ in procs]
        time.sleep(0.05)
    for rank, (p, _) in enumerate(procs):
        codes[rank] = p.poll()
        if codes[rank] is None:
            p.kill()
            p.wait()
    results = []
    for rank, (_, log) in enumerate(procs):
        log.seek(0)
        text = log.read()
        log.close()
        arrays_path, info_path = out / f"rank{rank}.npz", out / f"rank{rank}.json"
        arrays = dict(np.load(arrays_path)) if arrays_path.exists() else {}
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        results.append(RankResult(codes[rank], text, arrays, info))
    return results


def describe(results: list) -> str:
    return "\n".join(f"--- rank {r} (exit {res.returncode}) ---\n{res.output[-4000:]}" for r, res in enumerate(results))
