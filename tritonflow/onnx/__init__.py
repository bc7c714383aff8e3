"""tritonflow.onnx: models in and out of the ONNX format (the `onnx` package, an optional extra).

    tritonflow.onnx.export(model, (x,), "model.onnx", input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    loaded = tritonflow.onnx.load("model.onnx")       # an nn.Module: call it eagerly or compile it

Export writes the traced IR (exporter.py); import runs an ONNX graph with tritonflow ops (loader.py).
Both import `onnx` when called, so `import tritonflow.onnx` needs nothing extra.
"""
from tritonflow.onnx.exporter import export  # noqa: F401
from tritonflow.onnx.loader import OnnxModule, load  # noqa: F401

__all__ = ["export", "load", "OnnxModule"]
