"""The IR: flat SSA graphs of op-table primitives (see DESIGN.md, "The IR")."""
from tritonflow.ir.graph import Graph, Node, format_graph
from tritonflow.ir.types import TensorType, is_static, numel

__all__ = ["Graph", "Node", "TensorType", "format_graph", "is_static", "numel"]
