"""Core: the C backend (backend name "c") — row-wise regions of a graph as generated, compiled C.

regions.py decides what runs as C, c_source.py writes it, toolchain.py compiles and caches it,
backend.py runs a graph's NumPy steps and C regions in order.
"""
