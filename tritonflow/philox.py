"""Counter-based Philox 4x32-10 random bits in NumPy: the definition the GPU kernels reproduce.

Same constants and round structure as Triton's `tl.randint4x(seed, offset)` (counter words
(offset, 0, 0, 0), key = the 64-bit seed split in low and high words), so a kernel calling it
with the same seed and element offsets gets identical bits.
"""
from __future__ import annotations

import numpy as np

PHILOX_KEY_A = np.uint32(0x9E3779B9)
PHILOX_KEY_B = np.uint32(0xBB67AE85)
PHILOX_ROUND_A = np.uint64(0xD2511F53)
PHILOX_ROUND_B = np.uint64(0xCD9E8D57)
N_ROUNDS = 10
UNIFORM_SCALE = np.float32(4.6566127342e-10)  # 2**-31, as Triton's uint_to_uniform_float


def _mulhilo(a: np.uint64, b: np.ndarray):
    product = a * b.astype(np.uint64)
    return (product >> np.uint64(32)).astype(np.uint32), product.astype(np.uint32)


def philox4x32(seed: int, counter: np.ndarray) -> tuple:
    """Four uint32 words per counter value, Philox 4x32 with 10 rounds. A 64-bit counter fills the
    first two counter words (low, high), as Triton's randint4x does with an int64 offset."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    k0 = np.uint32(seed & 0xFFFFFFFF)
    k1 = np.uint32(seed >> 32)
    wide = np.asarray(counter).astype(np.uint64)
    c0 = (wide & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    c1 = (wide >> np.uint64(32)).astype(np.uint32)
    c2 = np.zeros_like(c0)
    c3 = np.zeros_like(c0)
    with np.errstate(over="ignore"):
        for _ in range(N_ROUNDS):
            hi_b, lo_b = _mulhilo(PHILOX_ROUND_B, c2)
            hi_a, lo_a = _mulhilo(PHILOX_ROUND_A, c0)
            c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
            k0 = np.uint32((int(k0) + int(PHILOX_KEY_A)) & 0xFFFFFFFF)
            k1 = np.uint32((int(k1) + int(PHILOX_KEY_B)) & 0xFFFFFFFF)
    return c0, c1, c2, c3


def uint32_to_uniform(bits: np.ndarray) -> np.ndarray:
    """uint32 -> float32 in [0, 1), Triton's mapping: reinterpret as int32, fold negatives, scale."""
    as_int = bits.view(np.int32).astype(np.int64)
    folded = np.where(as_int < 0, -as_int - 1, as_int)
    return (folded.astype(np.float32) * UNIFORM_SCALE).astype(np.float32)


def uniform(seed: int, offset: int, shape: tuple, lane: int = 0) -> np.ndarray:
    """Uniform float32 in [0, 1): element i uses counter offset + i and word `lane` of its block."""
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    counter = np.arange(n, dtype=np.uint64) + np.uint64(offset)
    words = philox4x32(seed, counter)
    return uint32_to_uniform(words[lane]).reshape(shape)


class Generator:
    """Seed and running offset; every draw of n numbers advances the offset by n."""

    def __init__(self, seed: int = 0) -> None:
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> "Generator":
        self.seed = int(seed)
        self.offset = 0
        return self

    def take(self, count: int) -> tuple:
        """Reserve `count` counters: returns (seed, first offset)."""
        offset = self.offset
        self.offset += int(count)
        return self.seed, offset

    def get_state(self) -> tuple:
        return (self.seed, self.offset)

    def set_state(self, state: tuple) -> None:
        self.seed, self.offset = int(state[0]), int(state[1])


default_generator = Generator(0)
