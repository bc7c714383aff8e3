"""Core tests run with TRITONFLOW_DEBUG=1: every graph jit builds is verified after every pass."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def verify_after_every_pass(monkeypatch):
    monkeypatch.setenv("TRITONFLOW_DEBUG", "1")
