"""Capture stage (installed as `tritonflow.tracer`): run a Python function on proxies and record IR.

- `pytree`: nested arguments flattened into tensor leaves and a hashable structure spec;
- `guards`: what must stay the same for a compiled graph to be reused, and why a call missed;
- `trace`: the trace itself, producing a `Traced` graph with its input and output mapping;
- `state`: whether a trace is recording on this thread (the front end's dispatch asks it);
- `captured`: the tensors a trace reaches from outside the function, their shadows and gradients;
- `sources`: named paths from a function's globals to those tensors (`model.0.weight`);
- `binding`: finding captured state again at each call, and the guards on it;
- `leaf`: the tensor type the front end registers, so the tracer never imports it.

The tracer imports only the core (IR, dtypes, errors).
"""
