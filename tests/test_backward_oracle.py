"""sd.testing.check_backward: hand-written backward passes against the symbolic vjp.

CS231n-style layers (written in NumPy, traced through the NumPy dispatch) with their correct
backward and a planted bug each; the report's verdict and hint must name the right input and
pattern. Over the op table, every op's own bprop wrapped as a hand-written backward must pass
(no false alarms). Bad input gets a SymdiffError naming the culprit.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import symdiff as sd
from symdiff.grad import unbroadcast
from symdiff.testing import assert_backward_close, check_backward

from cases import ROWS


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# CS231n-style layers
# ---------------------------------------------------------------------------------------------
def affine_forward(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b


def affine_backward(dout, x, w, b):
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = np.sum(dout, axis=0)
    return dx, dw, db


def affine_backward_mean(dout, x, w, b):
    dx, dw, _ = affine_backward(dout, x, w, b)
    return dx, dw, np.mean(dout, axis=0)


def affine_backward_no_transpose(dout, x, w, b):
    _, dw, db = affine_backward(dout, x, w, b)
    return dout @ w, dw, db


def affine_backward_sign(dout, x, w, b):
    dx, dw, db = affine_backward(dout, x, w, b)
    return dx, -dw, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    return dout * (cache > 0)


def relu_backward_ge(dout, cache):
    return dout * (cache >= 0)


def batchnorm_forward(x, gamma, beta):
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + 1e-5)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (xhat, gamma, std)


def batchnorm_backward(dout, cache):
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / std
    return dx, np.sum(dout * xhat, axis=0), dout.sum(axis=0)


def batchnorm_backward_forgotten_term(dout, cache):
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - xhat * (dxhat * xhat).mean(axis=0)) / std
    return dx, np.sum(dout * xhat, axis=0), dout.sum(axis=0)


def softmax_loss(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.mean(log_probs[np.arange(x.shape[0]), y])


def _softmax_grad(x, y):
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(x.shape[0]), y] -= 1
    return p


def softmax_loss_backward(dout, x, y):
    return dout * _softmax_grad(x, y) / x.shape[0]


def softmax_loss_backward_sum(dout, x, y):
    return dout * _softmax_grad(x, y)


def _affine_inputs(n=4, d=6, m=3, seed=0):
    rng = _rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(d, m)), rng.normal(size=m)


def test_correct_layers_pass():
    rng = _rng(1)
    report = check_backward(affine_forward, affine_backward, *_affine_inputs())
    assert report.ok and report.max_rel_err < 1e-12, report
    assert check_backward(relu_forward, relu_backward, rng.normal(size=(5, 4)), cache=True).ok
    bn = rng.normal(size=(8, 3)), rng.normal(size=3), rng.normal(size=3)
    report = check_backward(batchnorm_forward, batchnorm_backward, *bn, cache=True)
    assert report.ok and report.max_rel_err < 1e-12, report
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    report = check_backward(softmax_loss, softmax_loss_backward, x, y)
    assert report.ok and list(report.inputs) == ["x"], report  # the labels are held constant


def test_affine_inputs_with_trailing_dimensions():
    rng = _rng(2)
    x, w, b = rng.normal(size=(3, 2, 4)), rng.normal(size=(8, 5)), rng.normal(size=5)
    assert check_backward(affine_forward, affine_backward, x, w, b).ok


def test_mean_instead_of_sum_names_b_and_the_scale():
    report = check_backward(affine_forward, affine_backward_mean, *_affine_inputs(n=4))
    assert not report.ok
    assert [r.name for r in report.inputs.values() if not r.ok] == ["b"]
    assert report["b"].verdict == "wrong"
    assert "scaled by 1/4" in report["b"].hint and "mean" in report["b"].hint
    assert "finite differences side with symdiff" in report["b"].opinion
    assert "WRONG gradient for b" in str(report)


def test_sum_instead_of_mean_in_the_loss():
    rng = _rng(3)
    x, y = rng.normal(size=(5, 3)), rng.integers(0, 3, 5)
    report = check_backward(softmax_loss, softmax_loss_backward_sum, x, y)
    assert report["x"].verdict == "wrong" and "scaled by 5" in report["x"].hint


def test_missing_transpose_on_a_square_weight():
    x, w, b = _affine_inputs(d=5, m=5)
    report = check_backward(affine_forward, affine_backward_no_transpose, x, w, b)
    assert not report["x"].ok and report["w"].ok and report["b"].ok
    assert "off by a transpose" in report["x"].hint and "w.T" in report["x"].hint


def test_missing_transpose_of_a_whole_gradient():
    x, w, b = _affine_inputs(d=4, m=4)

    def backward(dout, x, w, b):
        dx, dw, db = affine_backward(dout, x, w, b)
        return dx, dw.T, db
    report = check_backward(affine_forward, backward, x, w, b)
    assert "off by a transpose" in report["w"].hint


def test_missing_transpose_with_a_shape_error():
    def backward(dout, x, w, b):
        dx, dw, db = affine_backward(dout, x, w, b)
        return dx, dout.T @ x, db
    with pytest.raises(sd.ShapeError, match=r"\(3, 6\) for 'w'.*\(6, 3\).*off by a transpose"):
        check_backward(affine_forward, backward, *_affine_inputs())


def test_sign_flipped():
    report = check_backward(affine_forward, affine_backward_sign, *_affine_inputs())
    assert report["w"].verdict == "wrong" and report["w"].hint.startswith("sign flipped")


def test_missing_sum_over_the_batch_axis():
    def backward(dout, x, w, b):
        dx, dw, _ = affine_backward(dout, x, w, b)
        return dx, dw, dout
    with pytest.raises(sd.ShapeError, match=r"'b'.*missing sum over the batch axis"):
        check_backward(affine_forward, backward, *_affine_inputs())


def test_broadcast_not_reduced_over_a_size_one_axis():
    rng = _rng(4)

    def forward(x, s):
        return x * s

    def backward(dout, x, s):
        return dout * s, dout * x
    with pytest.raises(sd.ShapeError, match=r"broadcast not reduced: sum over axes \(1,\)"):
        check_backward(forward, backward, rng.normal(size=(3, 4)), rng.normal(size=(3, 1)))


def test_forgotten_batchnorm_term_is_constant_along_the_batch_axis():
    rng = _rng(5)
    bn = rng.normal(size=(8, 3)), rng.normal(size=3), rng.normal(size=3)
    report = check_backward(batchnorm_forward, batchnorm_backward_forgotten_term, *bn,
                            cache=True)
    assert [r.name for r in report.inputs.values() if not r.ok] == ["x"]
    assert "same at every position along axis 0" in report["x"].hint


def test_kinks_are_told_apart():
    x = _rng(6).normal(size=(3, 4))
    x[0, :2] = 0.0
    report = check_backward(relu_forward, relu_backward_ge, x, cache=True)
    assert report.ok and report["x"].verdict == "wrong only at kinks"
    assert report["x"].mismatches == 2 and "kinks" in str(report)
    strict = check_backward(relu_forward, relu_backward_ge, x, cache=True, kinks="fail")
    assert not strict.ok
    x[1, 1] = -1.0  # off the kink, the >= convention is still right: a real bug is still caught

    def backward(dout, cache):
        return dout * (cache >= 0) + dout * (cache == -1.0)
    report = check_backward(relu_forward, backward, x, cache=True)
    assert not report.ok and report["x"].verdict == "wrong"


def test_wrong_only_in_float32():
    def forward(x):
        return sd.softplus(x)

    def backward(dout, x):  # e^x / (1 + e^x): inf / inf in float32 for large x
        return dout * np.exp(x) / (1 + np.exp(x))
    x = np.array([-3.0, 0.5, 100.0], dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        report = check_backward(forward, backward, x)
        assert check_backward(forward, backward, x.astype(np.float64)).ok
    assert report["x"].verdict == "wrong only in float32" and not report.ok


def test_disputed_when_finite_differences_side_with_the_backward():
    def forward(x):  # stop_gradient makes symdiff's gradient differ from the function's slope
        return sd.stop_gradient(x) * x

    def backward(dout, x):
        return 2 * x * dout
    report = check_backward(forward, backward, _rng(7).normal(size=4))
    assert report["x"].verdict == "disputed"
    assert "side with the backward" in report["x"].opinion


def test_given_upstream_and_wrt():
    x, w, b = _affine_inputs()
    dout = np.ones((4, 3))
    report = check_backward(affine_forward, lambda g, x, w, b: (x.T @ g, g.sum(0)), x, w, b,
                            upstream=dout, wrt=["w", "b"], trials=0)
    assert report.ok and list(report.inputs) == ["w", "b"] and report.upstreams == 1
    report = check_backward(affine_forward, lambda g, x, w, b: x.T @ g, x, w, b, wrt=1)
    assert list(report.inputs) == ["w"]
    # a backward returning one gradient per input keeps the wrt ones
    assert check_backward(affine_forward, affine_backward, x, w, b, wrt="b").ok


def test_float32_inputs_correct_backward_passes():
    x, w, b = (a.astype(np.float32) for a in _affine_inputs())
    report = check_backward(affine_forward, affine_backward, x, w, b)
    assert report.ok and report.rtol == 1e-3


def test_assert_backward_close_raises_with_the_report():
    assert_backward_close(affine_forward, affine_backward, *_affine_inputs())
    with pytest.raises(AssertionError) as info:
        assert_backward_close(affine_forward, affine_backward_mean, *_affine_inputs())
    text = str(info.value)
    assert "WRONG gradient for b" in text and "expected (symdiff)" in text and "1/4" in text


def test_two_layer_net_is_exact():
    rng = _rng(8)
    n, d, h, c = 16, 30, 10, 4

    def loss(x, w1, b1, w2, b2, y):
        hidden = np.maximum(0, x @ w1 + b1)
        return softmax_loss(hidden @ w2 + b2, y)

    def backward(dout, x, w1, b1, w2, b2, y):
        z = x @ w1 + b1
        hidden = np.maximum(0, z)
        dscores = dout * _softmax_grad(hidden @ w2 + b2, y) / x.shape[0]
        dhidden = dscores @ w2.T * (z > 0)
        return x.T @ dhidden, dhidden.sum(0), hidden.T @ dscores, dscores.sum(0)
    args = (rng.normal(size=(n, d)), rng.normal(size=(d, h)) * 0.1, np.zeros(h),
            rng.normal(size=(h, c)) * 0.1, np.zeros(c), rng.integers(0, c, n))
    report = check_backward(loss, backward, *args, wrt=["w1", "b1", "w2", "b2"])
    assert report.ok and report.max_rel_err < 1e-12, report


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backward, match", [
    (lambda g, x, w, b: (g @ w.T, x.T @ g), r"returned 2 gradient\(s\), expected 3 \(x, w, b"),
    (lambda g, x, w, b: (g @ w.T, None, g.sum(0)), r"NoneType.*gradient of 'w'"),
    (lambda g, x, w, b: (g @ w.T, "dw", g.sum(0)), r"gradient of 'w' must be a numeric"),
    (lambda g, x, w, b: g @ w.T, r"returned one value .* expected 3 gradients"),
    (lambda g, x, w, b: (g @ w.T, x.T @ g, np.zeros(7)), r"shape \(7,\) for 'b'.*\(3,\)"),
    (lambda g, x, w, b: 1 / 0, r"raised ZeroDivisionError"),
])
def test_bad_backward_names_the_culprit(backward, match):
    with pytest.raises(sd.SymdiffError, match=match):
        check_backward(affine_forward, backward, *_affine_inputs())


def test_untraceable_forward_names_it():
    def forward(x):
        return np.asarray(x) * 2.0
    with pytest.raises(sd.SymdiffError, match=r"cannot trace forward.*x: \(3,\)"):
        check_backward(forward, lambda g, x: 2 * g, np.ones(3))

    def constant(x):
        return 3.0
    with pytest.raises(sd.SymdiffError, match="does not depend on the traced inputs"):
        check_backward(constant, lambda g, x: 0 * x, np.ones(3))


@pytest.mark.parametrize("kwargs, match", [
    (dict(wrt="z"), "not an input"),
    (dict(upstream=np.ones(5)), r"upstream has shape \(5,\)"),
    (dict(rtol="big"), "rtol must be"),
    (dict(kinks="maybe"), "kinks must be"),
    (dict(cache=True), r"must return \(out, cache\)"),
])
def test_bad_options_name_the_culprit(kwargs, match):
    with pytest.raises(sd.SymdiffError, match=match):
        check_backward(lambda x: x * 2.0, lambda g, x: 2 * g, np.ones(3), **kwargs)


def test_bad_inputs_name_the_culprit():
    with pytest.raises(sd.SymdiffError, match="no inputs"):
        check_backward(lambda x: x, lambda g, x: g)
    with pytest.raises(sd.SymdiffError, match="forward must be a callable"):
        check_backward(3, lambda g, x: g, np.ones(2))
    with pytest.raises(sd.SymdiffError, match="input 0 must be a numeric array"):
        check_backward(lambda x: x, lambda g, x: g, np.array(["a"]))
    with pytest.raises(sd.SymdiffError, match="only float inputs have gradients"):
        check_backward(softmax_loss, softmax_loss_backward, np.ones((2, 3)), np.zeros(2, int),
                       wrt="y")


# ---------------------------------------------------------------------------------------------
# no false alarms over the op table: each op's own bprop, wrapped as a hand-written backward
# ---------------------------------------------------------------------------------------------
def _bprop_backward(row, case):
    """A "hand-written" backward for one op: its own ``bprop`` applied to the upstream at the
    op's node, reduced to each input's shape (what a person writes from the rule), with the
    chain rule through any other node between the inputs and the op taken from ``sd.vjp``.
    Compiled without rewrites, so it is not the oracle's own code."""
    def backward(upstream, *arrays):
        xs = [sd.var(f"p{k}", a.shape) for k, a in enumerate(arrays)]
        out = row.build(*xs, **case.params)
        g = sd.var("g_upstream", out.shape)
        totals: list = [None] * len(xs)
        for inp, c in zip(out.inputs, out.op.bprop(out.inputs, out, g)):
            if c is None:
                continue
            c = unbroadcast(c, inp.shape)
            for k, x in enumerate(xs):
                if inp is x:
                    part = c
                elif any(v is x for v in sd.free_vars(inp)):
                    part = sd.vjp(inp, x, c)
                else:
                    continue
                totals[k] = part if totals[k] is None else totals[k] + part
        totals = [t if t is not None else sd.const(np.zeros(x.shape)) for t, x in zip(totals, xs)]
        values = sd.compile(totals, inputs=[*xs, g], optimize=False)(*arrays, upstream)
        return tuple(values)
    return backward


OP_CASES = [pytest.param(row, case, id=row.case_id(case))
            for row in ROWS if row.gradient == "fd" for case in row.cases]


@pytest.mark.parametrize("row, case", OP_CASES)
def test_every_ops_own_bprop_passes(row, case):
    rng = np.random.default_rng(zlib.crc32(f"{row.case_id(case)}/backward".encode()))
    arrays = row.sample(rng, case)

    def forward(*xs):
        return row.build(*xs, **case.params)
    report = check_backward(forward, _bprop_backward(row, case), *arrays)
    assert report.ok, report


def test_a_cache_pair_without_cache_true_is_named():
    with pytest.raises(sd.SymdiffError, match=r"pass cache=True"):
        check_backward(relu_forward, relu_backward, np.ones(3))


def test_report_object():
    report = check_backward(affine_forward, affine_backward_mean, *_affine_inputs())
    assert not bool(report) and report.max_abs_err == report["b"].max_abs_err
    worst = report["b"].worst
    assert len(worst) == 3 and all(len(entry) == 3 for entry in worst)
    index, expected, got = worst[0]
    assert isinstance(index, tuple) and abs(got * 4 - expected) < 1e-12
    assert report["b"].mismatches == 3 and report["b"].size == 3


def test_a_bad_upstream_is_named():
    with pytest.raises(sd.SymdiffError, match="upstream must be a numeric array"):
        check_backward(lambda x: x * 2.0, lambda g, x: 2 * g, np.ones(3), upstream=["a"] * 3)
