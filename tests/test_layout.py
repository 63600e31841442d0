"""The layout ops (ops/layout.py) beyond the op table's generic checks: NumPy's argument forms
(split points, pad widths, diag of a matrix), params normalized and type-checked by the
constructors (the path graph files take), save/load and text round trips, views that in-place
statements must not write through, integer labels and indices as variables, and pad's jvp with
a nonzero fill."""
from __future__ import annotations

import json

import numpy as np
import pytest

import symdiff as sd
from symdiff.graph import toposort
from symdiff.interop.serialize import GraphFileError, dumps, loads
from symdiff.ops import layout

LAYOUT_OPS = {"squeeze", "expand_dims", "split", "flip", "tile", "repeat", "pad",
              "take_along_axis", "scatter_along_axis", "one_hot", "tril", "triu", "diag",
              "diagonal", "trace"}


def _every_layout_op():
    """A loss using every layout op, its labels and indices as integer variables, and its
    gradient (which brings in scatter_along_axis and the transposes)."""
    x = sd.var("x", (1, 3, 4))
    labels = sd.var("labels", (3,), "int64")
    picks = sd.var("picks", (3, 2), "int64")
    m = sd.squeeze(x, axis=0)                                   # (3, 4)
    top, rest = sd.split(m, [1], axis=0)                         # (1, 4), (2, 4)
    grid = sd.concatenate([sd.flip(top, 1), sd.tril(rest, 1), sd.triu(rest, -1)], axis=0)
    wide = sd.pad(sd.tile(grid, (1, 2)), ((0, 0), (1, 0)), constant_values=0.5)  # (5, 9)
    long = sd.repeat(sd.expand_dims(sd.diagonal(wide, 1), 0), [2], axis=0)  # (2, 5)
    square = sd.diag(sd.take_along_axis(m, picks, axis=1)[:, 0])  # (3, 3)
    loss = (sd.sum(long) + sd.trace(square) + sd.sum(sd.one_hot(labels, 4) * m)
            + sd.trace(sd.diag(sd.sum(wide, axis=1)), offset=1))
    return loss, [x, labels, picks], sd.grad(loss, x)


def _values():
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((1, 3, 4)), "labels": np.array([3, 0, 3]),
            "picks": np.array([[3, 0], [1, 1], [0, 2]])}


def test_every_layout_op_round_trips_through_a_graph_file(tmp_path):
    loss, inputs, g = _every_layout_op()
    names = {n.op.name for n in toposort([loss, g]) if n.op is not None}
    assert LAYOUT_OPS <= names, sorted(LAYOUT_OPS - names)
    assert loads(dumps([loss, g])) == [loss, g]  # interned: the very same nodes
    path = sd.save([loss, g], tmp_path / "layout.json")
    assert sd.load(path) == [loss, g]
    before = sd.compile([loss, g], inputs=inputs)(**_values())
    after = sd.compile(sd.load(path), inputs=inputs)(**_values())
    for want, got in zip(before, after):
        np.testing.assert_array_equal(got, want)


def test_every_layout_op_gradient_matches_finite_differences():
    loss, inputs, _ = _every_layout_op()
    values = _values()
    result = sd.check_grad(loss, [inputs[0]], values)
    assert result.ok, str(result)


@pytest.mark.parametrize("field, value", [
    ("pad_width", [[1, True]]), ("pad_width", [[1, 1.0]]), ("pad_width", [[-1, 0]]),
    ("constant_values", True), ("constant_values", "0")])
def test_bad_pad_params_in_a_file_are_refused(field, value):
    document = json.loads(dumps(sd.pad(sd.var("v", (3,)), 1)))
    document["nodes"][-1]["params"][field] = value
    with pytest.raises(GraphFileError, match="node 1"):
        loads(json.dumps(document))


@pytest.mark.parametrize("build", [
    lambda: layout.Squeeze((True,)), lambda: layout.Squeeze((1.0,)), lambda: layout.Squeeze(()),
    lambda: layout.Squeeze((1, 0)), lambda: layout.ExpandDims((-1,)), lambda: layout.Flip(1),
    lambda: layout.Tile((2.0,)), lambda: layout.Tile((-1,)), lambda: layout.Tile(2),
    lambda: layout.Repeat(2.0), lambda: layout.Repeat((1, True)), lambda: layout.Repeat(-1),
    lambda: layout.Repeat(2, axis=False), lambda: layout.Pad(((1,),)),
    lambda: layout.Pad(1), lambda: layout.Split(0, 2, 1), lambda: layout.Split(True, 0, 1),
    lambda: layout.TakeAlongAxis(1.0), lambda: layout.OneHot(3.0), lambda: layout.OneHot(-1),
    lambda: layout.Tril(True), lambda: layout.Diag(0.0), lambda: layout.Diagonal(0, 1, 1),
    lambda: layout.Diagonal(0, -1, 0), lambda: layout.Trace(False, 0, 1),
    lambda: layout.ScatterAlongAxis((3,), 1)])
def test_constructors_refuse_params_that_would_collide_or_mislead(build):
    with pytest.raises(sd.SymdiffError):
        build()


def test_params_are_normalized_so_one_meaning_has_one_node():
    x = sd.var("x", (2, 1, 3))
    assert sd.squeeze(x) is sd.squeeze(x, axis=-2) is sd.squeeze(x, axis=(1,))
    assert sd.flip(x) is sd.flip(x, axis=(2, 0, 1))
    assert sd.expand_dims(x, -1) is sd.expand_dims(x, 3)
    assert sd.pad(x, 1) is sd.pad(x, (1, 1)) is sd.pad(x, ((1, 1),) * 3, constant_values=0.0)
    assert sd.repeat(x, [2, 2, 2], axis=2) is sd.repeat(x, 2, axis=-1)
    assert sd.diagonal(x, 0, -1, 0) is sd.diagonal(x, 0, 2, 0)
    assert layout.Pad(((1, 1),), 0) == layout.Pad(((1, 1),), 0.0)


def test_identity_forms_build_no_node():
    x = sd.var("x", (2, 3))
    assert sd.squeeze(x) is x and sd.flip(sd.var("s")) is sd.var("s")
    assert sd.expand_dims(x, ()) is x and sd.tile(x, (1, 1)) is x and sd.pad(x, 0) is x
    assert sd.split(x, 1) == [x]


@pytest.mark.parametrize("n, sections", [
    (6, 3), (6, [2, 3]), (6, [2, 10]), (6, [4, 1]), (6, [-2]), (6, []), (5, [0, 5]),
    (5, np.array([1, 3]))])
def test_split_follows_numpy(n, sections):
    x = sd.var("x", (2, n))
    value = np.arange(2.0 * n).reshape(2, n)
    pieces = sd.split(x, sections, axis=1)
    want = np.split(value, sections, axis=1)
    assert len(pieces) == len(want)
    for piece, ref in zip(pieces, want):
        np.testing.assert_array_equal(sd.compile(piece, inputs=[x])(value), ref)


@pytest.mark.parametrize("width", [2, (1, 2), [(0, 1)], ((1, 0), (0, 3)), np.array([[1, 2],
                                                                                     [0, 0]])])
def test_pad_takes_numpys_pad_width_forms(width):
    x = sd.var("x", (2, 3))
    value = np.arange(6.0).reshape(2, 3)
    got = sd.compile(sd.pad(x, width, constant_values=-1))(value)
    np.testing.assert_array_equal(got, np.pad(value, width, constant_values=-1))


@pytest.mark.parametrize("width", [(1, 2, 3), 1.5, "1", [[1, 2], [3, 4], [5, 6]], -1])
def test_pad_refuses_bad_widths_naming_the_shape(width):
    with pytest.raises(sd.ShapeError, match=r"pad.*\(2, 3\)"):
        sd.pad(sd.var("x", (2, 3)), width)


def test_pad_jvp_pads_the_tangent_with_zeros():
    """pad is affine in x: the fill belongs to the value, never to the tangent."""
    x = sd.var("x", (3,))
    tangent = sd.jvp(sd.pad(x, 1, constant_values=5.0), x, np.ones(3))
    np.testing.assert_array_equal(sd.compile(tangent, inputs=[x])(np.zeros(3)),
                                  [0.0, 1.0, 1.0, 1.0, 0.0])


def test_diag_of_a_matrix_is_its_diagonal_and_other_ranks_are_refused():
    m = sd.var("m", (3, 4))
    assert sd.diag(m, 1) is sd.diagonal(m, offset=1)
    with pytest.raises(sd.ShapeError, match=r"diag.*\(2, 3, 4\)"):
        sd.diag(sd.var("t", (2, 3, 4)))


def test_one_hot_of_an_integer_variable_in_a_cross_entropy():
    """Labels as an int64 input: the gradient w.r.t. the logits flows, none through labels."""
    z = sd.var("z", (4, 3))
    y = sd.var("y", (4,), "int64")
    loss = -sd.sum(sd.one_hot(y, 3) * sd.log_softmax(z, axis=1)) / 4
    logits = np.random.default_rng(1).standard_normal((4, 3))
    labels = np.array([2, 0, 1, 2])
    g = sd.grad(loss, z)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    want = (e / e.sum(axis=1, keepdims=True) - np.eye(3)[labels]) / 4
    np.testing.assert_allclose(sd.compile(g, inputs=[z, y])(logits, labels), want, rtol=1e-12)
    assert sd.compile(sd.one_hot(y, 3))(np.array([0, -1, 3, 2])).tolist() == [
        [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    with pytest.raises(sd.DTypeError, match="one_hot"):
        sd.one_hot(sd.var("b", (2,), "bool"), 3)


def test_take_along_axis_gradient_accumulates_repeated_indices():
    x = sd.var("x", (2, 4))
    idx = sd.var("idx", (2, 3), "int64")
    w = np.arange(1.0, 7.0).reshape(2, 3)
    g = sd.grad(sd.sum(sd.take_along_axis(x, idx, axis=1) * w), x)
    picks = np.array([[1, 1, -1], [0, 2, 0]])
    want = np.zeros((2, 4))
    np.add.at(want, (np.array([[0], [1]]), picks), w)
    np.testing.assert_array_equal(sd.compile(g, inputs=[x, idx])(np.zeros((2, 4)), picks), want)


def test_take_along_axis_refuses_float_indices_and_rank_mismatch():
    x = sd.var("x", (2, 4))
    with pytest.raises(sd.DTypeError, match="take_along_axis"):
        sd.take_along_axis(x, sd.var("f", (2, 1)), axis=1)
    with pytest.raises(sd.ShapeError, match=r"\(2,\).*\(2, 4\)"):
        sd.take_along_axis(x, np.array([0, 1]), axis=1)
    flat = sd.take_along_axis(x, np.array([7, 0]), axis=None)
    np.testing.assert_array_equal(sd.compile(flat)(np.arange(8.0).reshape(2, 4)), [7.0, 0.0])


@pytest.mark.parametrize("build", [
    lambda x: sd.flip(x, 0), lambda x: sd.squeeze(sd.reshape(x, (1, 3, 3)), 0),
    lambda x: sd.expand_dims(x, 0), lambda x: sd.diagonal(x), lambda x: sd.split(x, 3)[1],
    lambda x: sd.transpose(sd.diagonal(sd.expand_dims(x, 0), 0, 1, 2))])
def test_views_are_never_written_in_place(build):
    """flip, squeeze, expand_dims, split pieces and diagonal return views (diagonal's is
    read-only): an in-place statement after them must neither touch the input nor fail."""
    x = sd.var("x", (3, 3))
    view = build(x)
    out = sd.exp(view) * 2.0 + view
    value = np.arange(9.0).reshape(3, 3) / 9
    keep = value.copy()
    got = sd.compile(out)(value)
    np.testing.assert_array_equal(value, keep)
    ref = np.asarray(sd.compile(view)(keep))
    np.testing.assert_allclose(got, np.exp(ref) * 2.0 + ref)
    assert layout.Diagonal.view and not layout.Diagonal.writable_view


@pytest.mark.parametrize("text, want", [
    ("squeeze(x, axis=0)", lambda x: np.squeeze(x, axis=0)), ("flip(x)", np.flip),
    ("tile(x, 2)", lambda x: np.tile(x, 2)), ("pad(x, 1)", lambda x: np.pad(x, 1)),
    ("trace(x, axis1=1, axis2=2)", lambda x: np.trace(x, axis1=1, axis2=2)),
    ("repeat(x, [1, 0, 2], axis=2)", lambda x: np.repeat(x, [1, 0, 2], axis=2)),
    ("expand_dims(x, -1)", lambda x: np.expand_dims(x, -1))])
def test_text_calls_the_layout_functions(text, want):
    e = sd.parse(text, {"x": (1, 3, 3)})
    value = np.arange(9.0).reshape(1, 3, 3)
    np.testing.assert_array_equal(sd.compile(e)(value), want(value))
    assert sd.parse(str(e), {"x": (1, 3, 3)}) is e


@pytest.mark.parametrize("build", [
    lambda x: sd.tile(x, np.array("a")), lambda x: sd.tile(x, 2.0), lambda x: sd.tile(x, [[1]]),
    lambda x: sd.tile(x, 2 ** 62), lambda x: sd.repeat(x, 2 ** 62), lambda x: sd.pad(x, 2 ** 62),
    lambda x: sd.one_hot(x, 2 ** 62), lambda x: sd.diag(x[0], 2 ** 62),
    lambda x: sd.split(x, np.array(2)), lambda x: sd.split(x, 0),
    lambda x: sd.repeat(x, "ab"), lambda x: sd.expand_dims(x, 1.0)])
def test_bad_arguments_raise_symdiff_errors(build):
    """Found by the public-surface fuzzer: tile iterated a 0-d array of reps (TypeError); a
    result shape past int64 is refused when the node is built."""
    with pytest.raises(sd.SymdiffError):
        build(sd.var("x", (2, 3)))
