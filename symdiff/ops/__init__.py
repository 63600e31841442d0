"""All ops, by family. Each family module holds, per op, its class (shape rule, lowering, bprop)
and its public function; this package gathers the public functions.

``FUNCTIONS`` maps every function name the text parser may call to its builder: each
registered op with a builder of its name here, unless it is written only as an operator.
"""
from .base import REGISTRY, Op  # noqa: F401
from .elementwise import Unary  # noqa: F401
from .elementwise import (  # noqa: F401
    abs, add, clip, cos, divide, equal, exp, expm1, floor, greater, greater_equal, hardtanh,
    leaky_relu, less, less_equal, log, log1p, maximum, minimum, multiply, negative, not_equal,
    power, relu, round, sigmoid, sign, sin, softplus, sqrt, square, stop_gradient, subtract, tan,
    tanh, where)
from .linalg import dot, matmul, outer  # noqa: F401
from .nn import log_softmax, softmax  # noqa: F401
from .reduce import argmax, logsumexp, max, mean, min, norm, prod, sum  # noqa: F401
from .shape import (  # noqa: F401
    broadcast_to, concatenate, getitem, reshape, stack, take, transpose)
from .elementwise import (  # noqa: F401
    arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, cosh, elu, erf, erfc, gelu,
    log_sigmoid, logaddexp, mod, reciprocal, silu, sinh)
from .reduce import argsort, cumsum, sort, std, variance  # noqa: F401

from .elementwise import astype  # noqa: F401
from . import dispatch  # noqa: F401,E402
from .custom import define_op  # noqa: F401,E402
from .layout import (  # noqa: F401
    diag, diagonal, expand_dims, flip, one_hot, pad, repeat, split, squeeze, take_along_axis,
    tile, trace, tril, triu)

from .linalg import einsum, tensordot  # noqa: F401
from .nn import avg_pool2d, conv1d, conv2d, max_pool2d  # noqa: F401

FUNCTIONS = {name: globals()[name] for name, cls in REGISTRY.items()
             if cls.callable_by_name and callable(globals().get(name))}
