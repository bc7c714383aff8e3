"""The reproducibility promise: tritonflow's Philox (the interpreter's random numbers) is bit for bit
Triton's own `tl.randint4x` / `tl.rand`, so a generated kernel drawing with the same seed and
offsets reproduces the interpreter exactly.

Triton's side runs in a subprocess with TRITON_INTERPRET=1 (the interpreter must be chosen before
triton is first imported), on CPU. tritonflow's side is also checked against a from-the-paper
Philox written in tests/core/core_reference.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tritonflow as tf
from tritonflow import philox

from core_reference import philox_4x32_10, uniform_from_bits

SEEDS = [0, 1, 12345, 2**31 + 7, 2**40 + 3]
OFFSETS = [0, 1000, 2**31 - 3, 2**32 - 5, 2**32 + 9]
N = 16

TRITON_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch, triton, triton.language as tl

    @triton.jit
    def draw(words_ptr, uniform_ptr, seed, base, N: tl.constexpr):
        offs = tl.arange(0, N)
        counters = base + offs.to(tl.int64)
        r0, r1, r2, r3 = tl.randint4x(seed, counters)
        tl.store(words_ptr + offs * 4 + 0, r0.to(tl.int32, bitcast=True))
        tl.store(words_ptr + offs * 4 + 1, r1.to(tl.int32, bitcast=True))
        tl.store(words_ptr + offs * 4 + 2, r2.to(tl.int32, bitcast=True))
        tl.store(words_ptr + offs * 4 + 3, r3.to(tl.int32, bitcast=True))
        tl.store(uniform_ptr + offs, tl.rand(seed, counters))

    results = []
    for seed, base, n in json.loads(sys.argv[1]):
        words = torch.zeros(n * 4, dtype=torch.int32)
        uniform = torch.zeros(n, dtype=torch.float32)
        draw[(1,)](words, uniform, seed, base, N=n)
        results.append({"words": words.tolist(),
                        "uniform": uniform.view(torch.int32).tolist()})
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def triton_bits():
    cases = [(seed, base, N) for seed in SEEDS for base in OFFSETS]
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, "-c", TRITON_SCRIPT, json.dumps(cases)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(zip(cases, json.loads(done.stdout.strip().splitlines()[-1])))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("base", OFFSETS)
def test_words_match_triton_randint4x(triton_bits, seed, base):
    want = np.asarray(triton_bits[(seed, base, N)]["words"], dtype=np.int32).view(np.uint32).reshape(N, 4)
    counter = np.arange(N, dtype=np.uint64) + np.uint64(base)
    got = np.stack(philox.philox4x32(seed, counter), axis=1)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("base", OFFSETS)
def test_uniform_matches_triton_rand(triton_bits, seed, base):
    want = np.asarray(triton_bits[(seed, base, N)]["uniform"], dtype=np.int32).view(np.float32)
    got = philox.uniform(seed, base, (N,), lane=0)
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_matches_the_paper(seed):
    counters = [0, 1, 7, 2**32 - 1, 2**32, 2**33 + 5]
    for c in counters:
        want = philox_4x32_10(seed, c)
        got = philox.philox4x32(seed, np.asarray([c], dtype=np.uint64))
        assert tuple(int(w[0]) for w in got) == want, (seed, c)
    u = philox.uniform(seed, 5, (3,), lane=1)
    np.testing.assert_array_equal(u, [uniform_from_bits(philox_4x32_10(seed, 5 + i)[1]) for i in range(3)])


def test_rand_is_the_philox_stream():
    """tritonflow.rand after manual_seed(s) draws counters 0, 1, 2, ... of seed s, eagerly and jitted."""
    tf.manual_seed(77)
    eager = tf.rand(2, 5).numpy()
    np.testing.assert_array_equal(eager, philox.uniform(77, 0, (2, 5), 0))
    following = tf.rand(3).numpy()
    np.testing.assert_array_equal(following, philox.uniform(77, 10, (3,), 0))
    tf.manual_seed(77)
    jitted = tf.jit(lambda x: x + tf.rand(2, 5))(tf.zeros(2, 5)).numpy()
    np.testing.assert_array_equal(jitted, eager)
