"""Core: the package version, in the core so the kernel cache (kernels/cache.py) can key on it
without importing the front end. pyproject.toml carries the same number (tests/test_layering.py
checks they agree)."""

__version__ = "0.1.0"
