"""Graph -> Graph passes: simplify, fold, cse, dce (run by passes.pipeline)."""
from tritonflow.passes.cse import cse
from tritonflow.passes.dce import dce
from tritonflow.passes.pipeline import default_passes, run_passes

__all__ = ["cse", "dce", "default_passes", "run_passes"]
