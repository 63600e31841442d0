"""Golden strings for the generated source of a few graphs, so any change to lowering (the
NumPy printer, in-place and ``del`` planning, constant binding, comments) is seen in review.

A deliberate change regenerates the files in ``tests/golden/`` with
``python -m tests.test_golden_source`` and is committed on its own, saying why.
"""
import pathlib

import pytest

import symdiff as sd
from symdiff.training.models import mlp_loss

GOLDEN = pathlib.Path(__file__).parent / "golden"


def _mlp():
    model = mlp_loss(8, 5, 4, 3)
    return sd.compile_grad(model.loss, model.params, inputs=model.params + model.data)


def _cs224n():
    x, y, z = sd.var("x"), sd.var("y"), sd.var("z")
    f = (x + y) * sd.maximum(y, z)
    return sd.compile_grad(f, [x, y, z])


def _softmax_cross_entropy():
    logits, labels = sd.var("logits", (4, 3)), sd.var("labels", (4, 3))
    loss = -sd.mean(sd.sum(labels * sd.log_softmax(logits, axis=1), axis=1))
    return sd.compile_grad(loss, [logits], inputs=[logits, labels])


def _elementwise_chain():
    x = sd.var("x", (16,))
    y = sd.tanh(sd.exp(sd.sin(x) * 2.0 + 1.0) / (1.0 + sd.square(x))) - sd.sigmoid(x)
    return sd.compile([sd.sum(y), sd.relu(y) * 3.0])


CASES = {"mlp_value_grad": _mlp, "cs224n": _cs224n,
         "softmax_cross_entropy": _softmax_cross_entropy, "elementwise_chain": _elementwise_chain}


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_source_is_golden(name):
    expected = (GOLDEN / f"{name}.py.txt").read_text()
    assert CASES[name]().source == expected


if __name__ == "__main__":  # regenerate the goldens after a deliberate change
    for case, build in CASES.items():
        (GOLDEN / f"{case}.py.txt").write_text(build().source)
