"""The vectorised erf of the NumPy meanings (tritonflow/ops/special.py) against mpmath at 30 digits.

Both paths (scipy.special when installed, the NumPy-only formula otherwise) must be within 2 ulps
of the exact value in float64 and correctly rounded in float32, keep NaN, infinities and signed
zeros, and the formula's coefficients must be what the interpolation it describes gives.
"""
from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

import tritonflow as tf
from tritonflow.ops import special

mp.mp.dps = 30


def _grid() -> np.ndarray:
    rng = np.random.default_rng(7)
    points = np.concatenate([np.linspace(0.0, 7.0, 4001), np.geomspace(1e-300, 1.0, 200),
                             rng.uniform(0.0, 6.5, 3000), [special.SMALL, np.nextafter(special.SMALL, 0),
                                                           special.LARGE, np.nextafter(special.LARGE, 0)]])
    return np.concatenate([points, -points])


def _exact(points: np.ndarray) -> np.ndarray:
    return np.array([float(mp.erf(mp.mpf(float(p)))) for p in points])


def _paths(formula, from_scipy) -> dict:
    """The implementations to test: the NumPy formula, and SciPy's ufunc when installed."""
    return {"numpy formula": formula, **({"scipy": from_scipy} if from_scipy is not None else {})}


def _ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    return np.abs(got - exact) / np.spacing(np.abs(exact).astype(got.dtype))


GRID = _grid()
EXACT = _exact(GRID)
PATHS = _paths(special.erf_numpy, special._SCIPY_ERF)


@pytest.mark.parametrize("path", PATHS)
def test_float64_within_two_ulps(path):
    got = PATHS[path](GRID)
    assert got.dtype == np.float64
    ulps = _ulps(got, EXACT)
    assert ulps.max() <= 2.0, (path, GRID[ulps.argmax()], ulps.max())


@pytest.mark.parametrize("path", PATHS)
def test_float32_correctly_rounded(path):
    points = GRID.astype(np.float32)
    want = _exact(points.astype(np.float64)).astype(np.float32)
    got = PATHS[path](points)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("path", PATHS)
def test_special_values(path):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-310, 40.0, -40.0])
    got = PATHS[path](x)
    assert np.isnan(got[0])
    np.testing.assert_array_equal(got[1:], [1.0, -1.0, 0.0, -0.0, erf_tiny(1e-310), 1.0, -1.0])
    assert np.signbit(got[4]) and not np.signbit(got[3])
    assert PATHS[path](np.zeros((0, 3), np.float32)).shape == (0, 3)
    assert float(PATHS[path](np.array(0.5))) == pytest.approx(float(mp.erf(0.5)), rel=1e-15)


def erf_tiny(x: float) -> float:
    return float(mp.erf(mp.mpf(x)))


def test_without_scipy_the_op_uses_the_formula(monkeypatch):
    monkeypatch.setattr(special, "_SCIPY_ERF", None)
    x = GRID[::7].astype(np.float32)
    np.testing.assert_array_equal(tf.erf(tf.tensor(x)).numpy(), special.erf_numpy(x))


@pytest.mark.parametrize("dtype,ulps", [("float64", 2), ("float32", 0), ("float16", 0), ("bfloat16", 0)])
def test_erf_op_every_float_dtype(dtype, ulps, backend):
    """tf.erf (eager and jitted, half precision computed in float32 and rounded once) on both backends."""
    x = tf.tensor(GRID[::5]).to(getattr(tf, dtype))
    got = tf.jit(tf.erf, backend=backend)(x)
    assert got.dtype == x.dtype
    points = x.to(tf.float64).numpy()
    want = tf.tensor(_exact(points)).to(getattr(tf, dtype)).to(tf.float64).numpy()
    got64 = got.to(tf.float64).numpy()
    eager = tf.erf(x).to(tf.float64).numpy()
    spacing = np.spacing(np.abs(want).astype(x.numpy().dtype if dtype != "bfloat16" else np.float32))
    if backend == "numpy":
        np.testing.assert_array_equal(eager, got64)
        assert (np.abs(got64 - want) <= ulps * spacing.astype(np.float64)).all()
    else:  # Triton's erf (libdevice's erff under the interpreter: NumPy float32 math) is not the spec's
        np.testing.assert_allclose(got64, want, rtol=4e-7 if dtype in ("float32", "float64") else 1e-2, atol=1e-7)


def _chebyshev_monomials(fn, low, high, n: int) -> list:
    """Monomial coefficients (in s in [-1, 1]) of fn's interpolant at n Chebyshev nodes."""
    mid, half = (low + high) / 2, (high - low) / 2
    nodes = [mp.cos(mp.pi * (k + mp.mpf(1) / 2) / n) for k in range(n)]
    values = [fn(mid + half * s) for s in nodes]
    # Solve the Vandermonde system exactly at 50 digits: the interpolant is unique.
    with mp.workdps(50):
        matrix = mp.matrix([[s ** j for j in range(n)] for s in nodes])
        return [float(c) for c in mp.lu_solve(matrix, mp.matrix(values))]


def test_coefficients_are_the_interpolants():
    with mp.workdps(50):
        small, large, shift = mp.mpf(special.SMALL), mp.mpf(special.LARGE), mp.mpf(special.SHIFT)
        p = _chebyshev_monomials(lambda u: mp.erf(mp.sqrt(u)) / mp.sqrt(u), mp.mpf(0), small * small, len(special.P))

        def scaled_erfc(t):
            x = shift * (1 + t) / (1 - t)
            return mp.exp(x * x) * mp.erfc(x)
        q = _chebyshev_monomials(scaled_erfc, (small - shift) / (small + shift), (large - shift) / (large + shift),
                                 len(special.Q))
    np.testing.assert_allclose(special.P, p, rtol=1e-12, atol=1e-25)
    np.testing.assert_allclose(special.Q, q, rtol=1e-9, atol=1e-20)


# ---------------------------------------------------------------- sigmoid

SIGMOID_GRID = np.concatenate([np.linspace(-40.0, 40.0, 4001), np.geomspace(1e-300, 700.0, 300),
                               -np.geomspace(1e-300, 700.0, 300)])
SIGMOID_EXACT = np.array([float(1 / (1 + mp.exp(-mp.mpf(float(p))))) for p in SIGMOID_GRID])
SIGMOID_PATHS = _paths(special.sigmoid_numpy, special._SCIPY_EXPIT)


@pytest.mark.parametrize("path", SIGMOID_PATHS)
def test_sigmoid_within_ulps_of_the_exact_value(path):
    got = SIGMOID_PATHS[path](SIGMOID_GRID)
    ulps = _ulps(got, SIGMOID_EXACT)
    assert got.dtype == np.float64 and ulps.max() <= 3.0, (path, SIGMOID_GRID[ulps.argmax()], ulps.max())
    points = SIGMOID_GRID.astype(np.float32)
    want = np.array([float(1 / (1 + mp.exp(-mp.mpf(float(p))))) for p in points])
    got32 = SIGMOID_PATHS[path](points)
    ulps32 = _ulps(got32, want)
    assert got32.dtype == np.float32 and ulps32.max() <= 3.0, (path, points[ulps32.argmax()], ulps32.max())


@pytest.mark.parametrize("path", SIGMOID_PATHS)
def test_sigmoid_special_values(path):
    got = SIGMOID_PATHS[path](np.array([np.nan, np.inf, -np.inf, 0.0, 800.0, -800.0]))
    assert np.isnan(got[0])
    np.testing.assert_array_equal(got[1:], [1.0, 0.0, 0.5, 1.0, 0.0])


def test_without_scipy_sigmoid_uses_the_formula(monkeypatch):
    monkeypatch.setattr(special, "_SCIPY_EXPIT", None)
    x = SIGMOID_GRID[::5].astype(np.float32)
    np.testing.assert_array_equal(tf.sigmoid(tf.tensor(x)).numpy(), special.sigmoid_numpy(x))
