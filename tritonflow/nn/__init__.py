"""tritonflow.nn: modules (layers, containers, attention), parameters, init, and the functional ops."""
from tritonflow.nn import functional, init, utils  # noqa: F401
from tritonflow.nn import parallel  # noqa: F401  (DistributedDataParallel; torch.distributed loads on use)
from tritonflow.nn.attention import MultiheadAttention  # noqa: F401
from tritonflow.nn.containers import ModuleDict, ModuleList, Sequential  # noqa: F401
from tritonflow.nn.conv import AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, MaxPool2d, Upsample  # noqa: F401
from tritonflow.nn.layers import (GELU, Dropout, Embedding, Flatten, Identity, LayerNorm, Linear, ReLU,  # noqa: F401
                                  RMSNorm, SiLU, Sigmoid, Softmax, Tanh)
from tritonflow.nn.modules import Module  # noqa: F401
from tritonflow.nn.parameter import Parameter  # noqa: F401

__all__ = ["Module", "Parameter", "Linear", "Embedding", "LayerNorm", "RMSNorm", "Dropout", "Conv1d", "Conv2d",
           "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Upsample", "Flatten", "Sequential", "ModuleList",
           "ModuleDict", "ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "Softmax", "Identity", "MultiheadAttention",
           "functional", "init", "utils", "parallel"]
