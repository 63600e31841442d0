"""symdiff: a symbol-to-symbol differentiation compiler for Python.

Build a graph (``var``, ``const``, operators, the op functions, ``parse``, ``from_sympy``),
differentiate it into another graph (``grad``, ``vjp``, ``jacobian``, ``hessian``, ``hvp``,
``jvp``), look at it (``pretty``, ``to_dot``, ``str``) and lower it to NumPy (``compile``,
``compile_grad``). The public names here are those of the API contract (shared/API.md).
"""
from .errors import (  # noqa: F401
    DisconnectedInputError, DTypeError, InputError, NoBatchingRuleError, NonFiniteError, ParseError,
    ShapeError, SymdiffError, SymdiffWarning, UndefinedGradientError)
from .graph import Expr, const, free_vars, var  # noqa: F401
from .ops import (  # noqa: F401
    abs, argmax, broadcast_to, clip, concatenate, cos, dot, exp, expm1, floor, hardtanh,
    leaky_relu, log, log1p, log_softmax, logsumexp, matmul, max, maximum, mean, min, minimum,
    norm, outer, power, prod, relu, reshape, round, sigmoid, sign, sin, softmax, softplus, sqrt,
    square, stack, stop_gradient, sum, take, tan, tanh, transpose, where)
from .ops import astype, define_op  # noqa: F401
from .grad import grad, hessian, hvp, jacobian, jvp, vjp  # noqa: F401
from .compiler import compile, compile_grad  # noqa: F401
from .transforms import jit, value_and_grad  # noqa: F401
from .rewrite import optimize  # noqa: F401
from .tools.inspect import pretty, to_dot, to_latex  # noqa: F401
from .tools.explain import explain  # noqa: F401
from .tools.render import render  # noqa: F401
from .interop.serialize import load, save  # noqa: F401
from .training import init, models, optim  # noqa: F401
from .training.train import History, TrainingError, fit  # noqa: F401
from .training.scipy_adapter import ScipyObjective, scipy_objective  # noqa: F401
from .tools.check import check_grad  # noqa: F401
from .interop.parse import parse  # noqa: F401
from .interop.sympy_io import from_sympy, to_sympy  # noqa: F401
from .tools.report import report  # noqa: F401
from .ops import (  # noqa: F401
    arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, cosh, elu, erf, erfc, gelu,
    log_sigmoid, logaddexp, mod, reciprocal, silu, sinh)
from .ops import argsort, cumsum, sort, std, variance  # noqa: F401

from . import testing  # noqa: F401 (sd.testing.check_backward)
from .ops import (  # noqa: F401
    diag, diagonal, expand_dims, flip, one_hot, pad, repeat, split, squeeze, take_along_axis,
    tile, trace, tril, triu)
from .ops import avg_pool2d, conv1d, conv2d, einsum, max_pool2d, tensordot  # noqa: F401
from .ops import linalg  # noqa: F401  (sd.linalg.inv, solve, det, slogdet, cholesky)

__version__ = "0.1.0"
from .batching import vmap  # noqa: F401
