"""tritonflow.profiler: where a compiled function's time goes, per call, IR node and kernel.

    with tritonflow.profile() as prof:
        step(model, opt, x, y)
    print(prof.table())                      # the top kernels and IR nodes with the user's lines
    prof.export_chrome_trace("trace.json")   # open in Perfetto or chrome://tracing

recorder.py records, report.py prints and exports, tritonflow/profile_hooks.py (core) is the seam the runtime reads.
"""
from tritonflow.profiler.events import Cost, Event, Row  # noqa: F401
from tritonflow.profiler.recorder import Profile, profile  # noqa: F401

__all__ = ["profile", "Profile", "Cost", "Event", "Row"]
