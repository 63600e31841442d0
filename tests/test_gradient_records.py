"""Gradient names and marks belong to the view that holds a loss with its gradients, never to
the shared (interned) nodes: building the same expression elsewhere, or loading a file that
contains it, must not make the user's own graph print as a gradient."""
from __future__ import annotations

import gc
import json
import weakref

import numpy as np

import symdiff as sd
from symdiff.grad import _GRADIENT_OF, gradient_labels, gradient_nodes


def test_users_own_node_equal_to_a_gradient_prints_plainly():
    x = sd.var("x")
    y = x * x
    g = sd.grad(y, x)  # x + x, interned: the user's own x + x is the very same node
    mine = x + x
    assert mine is g
    listing = sd.pretty(mine)
    assert "[grad]" not in listing and "dJ" not in listing and "g_x" not in listing, listing
    assert "dJ" not in sd.to_dot(mine) and "#fde2c8" not in sd.to_dot(mine)
    assert "dJ" not in sd.compile(mine).source
    # with its loss the same node is shown as the gradient it is
    listing = sd.pretty(y, g)
    assert "g_x = add(x, x)" in listing and "[grad] dJ/dx" in listing, listing


def test_load_does_not_relabel_the_users_existing_nodes(tmp_path):
    x = sd.var("x_load")
    mine = sd.exp(x)  # the user's node, also the gradient in the file below
    loss = sd.sum(sd.exp(x))
    doc = json.loads(sd.interop.serialize.dumps([loss, mine]))
    doc["nodes"][-2]["label"] = "dJ/dx_load"  # exp(x): the file says it is a gradient
    doc["nodes"][-2]["role"] = "grad"
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    loaded = sd.load(path)
    assert loaded[1] is mine
    listing = sd.pretty(mine)
    assert "dJ" not in listing and "[grad]" not in listing, listing
    assert "dJ/dx_load" in sd.pretty(*loaded)  # the file's own view keeps its label


def test_labels_follow_outputs_through_rewrites_into_compiled_source():
    W1 = sd.var("W1", (3, 2))
    X = sd.var("X", (4, 3))
    loss = sd.sum(sd.relu(X @ W1)) + 0.001 * sd.sum(W1 * W1)
    f = sd.compile_grad(loss, [W1])
    assert "# dJ/dW1 = " in f.source, f.source
    plain = sd.compile(sd.grad(loss, W1))  # no loss in the view: no claim about it
    assert "dJ/dW1" not in plain.source


def test_to_dot_colours_the_gradient_nodes_only_with_the_loss():
    w = sd.var("w")
    z = sd.exp(sd.exp(w))
    g = sd.grad(z, w)
    dot = sd.to_dot(z, g)
    assert "cluster_grad" in dot and "dJ/dw" in dot
    assert "cluster_grad" not in sd.to_dot(g)


def test_records_free_nothing_late_and_hold_nothing_alive():
    x = sd.var("x_free", (3,))
    loss = sd.sum(sd.sin(x))
    g = sd.grad(loss, x)
    assert gradient_labels([loss, g]) == {id(g): "dJ/dx_free"}
    assert id(g) in gradient_nodes([loss, g])
    key = id(g)
    assert key in _GRADIENT_OF
    dead = weakref.ref(loss)
    del loss, g
    gc.collect()
    assert key not in _GRADIENT_OF and dead() is None


def test_second_derivative_is_named_after_the_first():
    x = sd.var("x")
    y = sd.sin(x)
    g = sd.grad(y, x)
    h = sd.grad(g, x)
    assert gradient_labels([g, h]) == {id(h): "d(dJ/dx)/dx"}
    assert np.isclose(sd.compile(h)(x=0.3), -np.sin(0.3))
