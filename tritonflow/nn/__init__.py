"""tritonflow.nn: functional ops now; modules come with the training issue."""
from tritonflow.nn import functional  # noqa: F401
