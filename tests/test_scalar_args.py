"""Scalar graphs take the math-module path for every argument the NumPy path casts to
float64 (Python int/bool, NumPy scalars of any bool/int/float dtype, 0-d arrays), with the
NumPy path's values, and refuse what the NumPy path refuses."""
import numpy as np
import pytest

import symdiff as sd
from symdiff.lower.scalar import Fallback, to_float

ACCEPTED = [1.5, 3, True, np.float64(1.5), np.float32(1.5), np.float16(1.5),
            np.longdouble(1.5), np.int8(-3), np.uint64(7), np.int64(2 ** 40), np.bool_(True),
            np.array(2.5), np.array(4, dtype=np.int32), np.array(1.5, dtype=np.float32),
            np.array(True), 2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1]
REFUSED = [1j, np.complex128(1.0), "1.0", np.array([1.0]), np.array(1j), 2 ** 64, -2 ** 63 - 1,
           None, [1.0]]


def _graph():
    x, y, z = sd.var("x"), sd.var("y"), sd.var("z")
    return sd.compile_grad((x + y) * sd.maximum(y, z) + sd.exp(-x * x), [x, y, z])


@pytest.mark.parametrize("value", ACCEPTED, ids=repr)
def test_accepted_argument_takes_the_scalar_path_with_numpy_values(value):
    f = _graph()
    fast = f._scalar_fn(value, 2.0, 0.5)  # raises Fallback if the path declined
    slow = f(x=value, y=2.0, z=0.5)  # keywords: the NumPy path
    assert f(value, 2.0, 0.5) == fast
    assert np.float64(fast[0]) == slow[0]
    assert all(np.float64(a) == b for a, b in zip(fast[1], slow[1]))
    assert type(to_float(value)) is float
    assert to_float(value) == np.asarray(value).astype(np.float64)


@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_refused_argument_falls_back_and_gets_the_numpy_paths_answer(value):
    f = _graph()
    with pytest.raises(Fallback):
        f._scalar_fn(value, 2.0, 0.5)
    with pytest.raises(sd.InputError) as positional:
        f(value, 2.0, 0.5)
    with pytest.raises(sd.InputError) as keyword:
        f(x=value, y=2.0, z=0.5)
    assert str(positional.value) == str(keyword.value)


def test_domain_error_with_numpy_scalar_still_gives_numpys_nan():
    x = sd.var("x")
    f = sd.compile(sd.log(x))
    with np.errstate(invalid="ignore"):
        assert np.isnan(f(np.float32(-1.0))) and np.isnan(f(np.array(-1)))
