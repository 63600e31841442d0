"""All ops, by family. Each family module holds, per op, its class (shape rule, lowering, bprop)
and its public function; this package gathers the public functions.

``FUNCTIONS`` maps every function name the text parser may call to its builder.
"""
from .base import REGISTRY, Op  # noqa: F401
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

FUNCTIONS = {
    name: globals()[name] for name in (
        "exp log log1p expm1 sqrt square abs sin cos tan tanh sigmoid softplus relu leaky_relu "
        "hardtanh maximum minimum where clip power sum mean max min prod logsumexp norm matmul "
        "dot outer transpose reshape concatenate stack take broadcast_to softmax log_softmax "
        "argmax floor round sign stop_gradient negative").split()
}
