"""tests/distributed: one two-rank launch runs every scenario that keeps the group healthy (start-up
of a process importing torch is most of the cost); the tests then check its results."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from harness import describe, run_ranks  # noqa: E402

WORLD = 2


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    results = run_ranks("suite", tmp_path_factory.mktemp("suite"), WORLD, timeout=300)
    assert all(r.returncode == 0 for r in results), describe(results)
    return results
