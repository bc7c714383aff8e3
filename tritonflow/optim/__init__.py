"""tritonflow.optim: SGD, Adam, AdamW (one compiled update per parameter group) and lr schedules."""
from tritonflow.optim import lr_scheduler  # noqa: F401
from tritonflow.optim.adam import Adam, AdamW  # noqa: F401
from tritonflow.optim.optimizer import Optimizer  # noqa: F401
from tritonflow.optim.sgd import SGD  # noqa: F401
