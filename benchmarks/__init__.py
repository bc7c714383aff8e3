"""Benchmarks behind `tritonflow bench`: CPU suites (compiler cost, call overhead, interpreter) and,
with a CUDA GPU, the GPU suite. Timings live here, never in tests."""
