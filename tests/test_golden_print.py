"""Golden strings: ``sd.pretty``, ``str`` and ``sd.to_latex`` of a few graphs from the lecture
notes, pinned so that any change to printing is seen in review.

The expected texts live in ``golden_print.json``. After a deliberate printing change, rewrite
the file with ``python tests/test_golden_print.py --write`` and commit it with the reason.

The gradient views list the loss with its gradients: ``pretty`` shows ``[grad]`` marks and
``g_W  # dJ/dW`` names only for a view that holds the loss too (grad.py's gradient records).
The texts are made in a fresh interpreter, so the SSA numbering never depends on which tests
built the same interned nodes first.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

import symdiff as sd
from symdiff.training.models import mlp_loss

GOLDEN = pathlib.Path(__file__).with_name("golden_print.json")


def _cases():
    """name -> (outputs printed by pretty and str, the one output typeset by to_latex)."""
    x, y, z = sd.var("x"), sd.var("y"), sd.var("z")
    f = (x + y) * sd.maximum(y, z)  # CS224n backprop example
    gx, gy, gz = sd.grad(f, [x, y, z])
    W, xv, b, u = sd.var("W", (3, 4)), sd.var("x", (4,)), sd.var("b", (3,)), sd.var("u", (3,))
    J = sd.sum(u * sd.sigmoid(W @ xv + b))  # CS224n window NER score
    gW, gxv = sd.grad(J, [W, xv])
    mlp = mlp_loss(5, 4, 3, 2)  # Goodfellow 6.5.7
    mlp_grads = sd.grad(mlp.loss, mlp.params)
    w = sd.var("w")

    def layer(t):
        return sd.sin(t) * t + 1.0
    h = layer(layer(layer(w)))
    gh = sd.grad(h, w)
    return {
        "cs224n": ([f], f), "cs224n_grads": ([f, gx, gy, gz], gy),
        "ner": ([J], J), "ner_grads": ([J, gW, gxv], gW),
        "mlp": ([mlp.loss], mlp.loss), "mlp_grads": ([mlp.loss, *mlp_grads], mlp_grads[0]),
        "fff": ([h], h), "fff_grad": ([h, gh], gh),
    }


def _render(outputs, one) -> dict:
    return {"pretty": sd.pretty(*outputs), "str": [str(o) for o in outputs],
            "latex": sd.to_latex(one)}


NAMES = ["cs224n", "cs224n_grads", "ner", "ner_grads", "mlp", "mlp_grads", "fff", "fff_grad"]


def _all_texts() -> str:
    return json.dumps({n: _render(*c) for n, c in _cases().items()}, indent=1) + "\n"


@pytest.fixture(scope="module")
def fresh_texts():
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    done = subprocess.run([sys.executable, __file__, "--print"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("view", ["pretty", "str", "latex"])
def test_golden(fresh_texts, name, view):
    expected = json.loads(GOLDEN.read_text())[name][view]
    assert fresh_texts[name][view] == expected


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:  # regenerate after a deliberate printing change
        GOLDEN.write_text(_all_texts())
    else:
        sys.stdout.write(_all_texts())
