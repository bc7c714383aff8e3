"""Packaging: `tritonflow.kernels`, `tritonflow.tracer` and `tritonflow.benchmarks` in a source
checkout that is not installed.

The folders kernels/, tracer/ and benchmarks/ sit at the repository root and install as
`tritonflow.kernels`, `tritonflow.tracer` and `tritonflow.benchmarks` (pyproject.toml's
package-dir). A wheel puts them inside tritonflow/; an editable
install maps them with setuptools' own finder. Running straight from a checkout (`PYTHONPATH=.`, as
on a machine where nothing can be installed) has neither, so this finder maps exactly those
names to the root folders. It is installed only when tritonflow/ sits beside a pyproject.toml and
the folders, so an installed tritonflow never maps a site-packages folder that is someone else's
(Hugging Face's `kernels`, for one).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_ROOT = _PACKAGE.parent
SUBPACKAGES = {"tritonflow.kernels": _ROOT / "kernels", "tritonflow.tracer": _ROOT / "tracer",
               "tritonflow.benchmarks": _ROOT / "benchmarks"}


class SourceTreeFinder(importlib.abc.MetaPathFinder):
    """Finds `tritonflow.kernels`, `tritonflow.tracer` and `tritonflow.benchmarks` in the checkout's root folders."""

    def find_spec(self, fullname, path=None, target=None):
        folder = SUBPACKAGES.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])


def install() -> None:
    if (_PACKAGE / "kernels").is_dir() or not (_ROOT / "pyproject.toml").is_file():
        return  # an installed wheel, or no checkout around this tritonflow
    if not all((folder / "__init__.py").is_file() for folder in SUBPACKAGES.values()):
        return
    if not any(isinstance(finder, SourceTreeFinder) for finder in sys.meta_path):
        # First: the folders beside this tritonflow/ are its own, even where an editable install of
        # another checkout (a git worktree of this one) maps the same names elsewhere.
        sys.meta_path.insert(0, SourceTreeFinder())
