"""examples/train_ddp.py under torchrun: two CPU processes train, end with identical parameters,
and only rank 0 draws the progress bar."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_example_trains_under_torchrun_on_two_cpu_processes():
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(REPO / "examples" / "train_ddp.py"), "--steps", "3", "--width", "32", "--timeout", "60"]
    proc = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "2 rank(s), eager: 3 steps, final loss" in proc.stdout
    assert "parameters identical on all 2 rank(s)" in proc.stdout
    assert proc.stdout.count("sample:") == 1  # rank 0 alone reports
    # Unsharded AdamW: each rank keeps the whole state, so both ranks report the same size.
    sizes = re.search(r"optimizer state per rank: (.*) KiB, (.*) KiB\n", proc.stdout)
    assert sizes and sizes[1] == sizes[2] and float(sizes[1]) > 0, proc.stdout
    # One progress bar (each bar prints its 0% state once) that reached the end.
    assert proc.stderr.count("2 x eager:   0%") == 1 and "3/3 [" in proc.stderr
