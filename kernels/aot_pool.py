"""Lowering stage (ahead of time): run compile requests (kernels/aot_worker.py) here or in workers.

A process whose Triton runs kernels in its interpreter (the test suite, TRITON_INTERPRET=1) cannot
compile for a GPU: its @triton.jit functions are interpreted ones. Requests then go to worker
processes started without TRITON_INTERPRET (`python -m tritonflow.kernels.aot_worker`), as they also
do whenever more than one job is asked for: the compiles of independent kernels run in parallel,
one per core. Otherwise they are compiled in this process, which spares a worker's start-up
(importing triton and torch, about a second) for a single kernel.

Workers inherit this process's environment with TRITON_INTERPRET removed, the directory holding
this tritonflow first on PYTHONPATH (they import the same code), and TRITON_CACHE_DIR set when a
cache directory is given. A worker that dies fails the request it held, with its stderr's tail,
and a fresh one takes the rest.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from typing import Optional

from tritonflow import environment
from tritonflow.errors import UnsupportedError


def triton_available() -> None:
    """Raise a clear error unless triton (and torch, for argument stand-ins) can be imported."""
    import importlib.util
    missing = [name for name in ("triton", "torch") if importlib.util.find_spec(name) is None]
    if missing:
        raise UnsupportedError(f"ahead-of-time compilation needs triton and torch installed: pip install "
                               f"'tritonflow[gpu]' (missing: {', '.join(missing)})")


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def compile_requests(requests: list, jobs: Optional[int] = None, cache_dir: Optional[str] = None) -> list:
    """One result per request, in order (see aot_worker.compile_request)."""
    triton_available()
    if not requests:
        return []
    jobs = min(jobs or default_jobs(), len(requests))
    if jobs == 1 and not environment.triton_interpret() and cache_dir is None:
        from tritonflow.kernels.aot_worker import compile_request
        return [compile_request(r) for r in requests]
    pool = CompilePool(jobs, cache_dir)
    for request in requests:
        pool.submit(request)
    return pool.results()


class _Worker:
    def __init__(self, env: dict) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([sys.executable, "-m", "tritonflow.kernels.aot_worker"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)

    def ask(self, request: dict) -> Optional[dict]:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            return None
        return json.loads(line) if line else None

    def stderr_tail(self) -> str:
        self.log.seek(0)
        return self.log.read()[-2000:]

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.log.close()


class CompilePool:
    """Worker processes compiling requests as they are submitted (module docstring).

    `submit` returns at once (the workers start with the first request), so a caller keeps lowering
    or testing while earlier kernels compile; `results()` waits for all and stops the workers."""

    def __init__(self, jobs: Optional[int] = None, cache_dir: Optional[str] = None) -> None:
        from tritonflow import version   # a core module: its folder's parent holds the tritonflow package
        root = os.path.dirname(os.path.dirname(os.path.abspath(version.__file__)))
        path = os.pathsep.join(p for p in (root, environment.child_environment().get("PYTHONPATH")) if p)
        self.env = environment.child_environment(unset=("TRITON_INTERPRET",), PYTHONPATH=path,
                                                 TRITON_CACHE_DIR=cache_dir)
        self.jobs = jobs or default_jobs()
        self.queue: queue.Queue = queue.Queue()
        self.requests: list = []
        self.done: dict = {}
        self.threads: list = []

    def submit(self, request: dict) -> int:
        """Queue `request`; returns its index in results()."""
        index = len(self.requests)
        self.requests.append(request)
        self.queue.put(index)
        if len(self.threads) < self.jobs:
            thread = threading.Thread(target=self._serve, daemon=True)
            thread.start()
            self.threads.append(thread)
        return index

    def results(self, jobs: Optional[int] = None) -> list:
        """Wait for every submitted request (with up to `jobs` workers from now on); stop the workers."""
        while jobs and len(self.threads) < min(jobs, len(self.requests)):
            thread = threading.Thread(target=self._serve, daemon=True)
            thread.start()
            self.threads.append(thread)
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        self.threads = []
        return [self.done[i] for i in range(len(self.requests))]

    def _serve(self) -> None:
        worker = _Worker(self.env)
        try:
            while True:
                index = self.queue.get()
                if index is None:
                    return
                result = worker.ask(self.requests[index])
                if result is None:  # the worker died on this request: report it, start another
                    tail = worker.stderr_tail()
                    worker.close()
                    result = {"error": f"compile worker exited: {tail.strip()[-1500:]}", "seconds": 0.0}
                    worker = _Worker(self.env)
                self.done[index] = result
        finally:
            worker.close()
