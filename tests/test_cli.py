"""The symdiff command: the demo (the README's main job) and ``symdiff grad``."""
import re

import pytest

from symdiff.cli import main


def test_grad_command_cs224n(capsys):
    assert main(["grad", "(x + y) * max(y, z)", "--wrt", "x,y,z", "--at", "x=1,y=2,z=0"]) == 0
    out = capsys.readouterr().out
    assert "f = (x + y) * maximum(y, z)" in out
    assert "simplified (SymPy)" in out
    assert "def symdiff_fn(" in out
    numbers = dict(re.findall(r"df/d(\w) = ([-\d.]+)", out))
    assert {k: float(v) for k, v in numbers.items()} == {"x": 2.0, "y": 5.0, "z": 0.0}
    assert re.search(r"  f = 6\.?", out)


def test_grad_command_with_shapes(capsys):
    code = main(["grad", "sum(u * tanh(W @ x + b))", "--wrt", "W,b", "--shape", "W=8x20",
                 "--shape", "x=20", "--shape", "u=8", "--shape", "b=8"])
    assert code == 0
    out = capsys.readouterr().out
    assert "df/dW = " in out and "df/db = " in out
    assert "(8, 20)" in out


@pytest.mark.parametrize("argv", [["grad", "x +"], ["grad", "x", "--shape", "x=3y"],
                                  ["grad", "__import__('os')"]])
def test_grad_command_reports_user_errors(argv, capsys):
    assert main(argv) == 2
    assert "symdiff:" in capsys.readouterr().err


def test_demo_runs_and_every_check_holds(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "check_grad: ok" in out
    assert "-> 0 errors" in out
    assert "def symdiff_fn(" in out
    assert "demo: all checks hold" in out


@pytest.mark.parametrize("argv, culprit", [
    (["grad", "sum(W @ x)", "--shape", "W=2x3,x=3", "--wrt", "W,q"], "'q'"),
    (["grad", "x * y", "--at", "x=1,z=2"], "'z'"),
    (["grad", "sum(W @ x)", "--shape", "W=2x3,x=3", "--shape", "Wq=3"], "'Wq'"),
], ids=["wrt", "at", "shape"])
def test_grad_command_rejects_unknown_names(argv, culprit, capsys):
    """issue 10, item 13: unknown --wrt, --at and --shape names were accepted silently (an
    unknown --wrt gave a zero derivative, an unknown --shape a scalar fallback)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert culprit in err and "not variables of the expression" in err


def test_grad_command_takes_a_comma_list_of_shapes(capsys):
    code = main(["grad", "sum(u * tanh(W @ x + b))", "--wrt", "W,b",
                 "--shape", "W=8x20,x=20,u=8", "--shape", "b=8"])
    assert code == 0
    out = capsys.readouterr().out
    assert "df/dW = " in out and "(8, 20)" in out


# ---------------------------------------------------------------------------------------------
# symdiff check MODULE:forward MODULE:backward
# ---------------------------------------------------------------------------------------------
_LAYERS = '''
import numpy as np

def affine_forward(x, w, b):
    return x @ w + b

def affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)

def affine_backward_mean(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.mean(axis=0)

def relu_forward(x):
    out = np.maximum(0, x)
    return out, x

def relu_backward(dout, cache):
    return dout * (cache > 0)

def softmax_loss(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.mean(log_probs[np.arange(x.shape[0]), y])

def softmax_loss_backward(dout, x, y):
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(x.shape[0]), y] -= 1
    return dout * p / x.shape[0]

def log_forward(x):
    return np.log(x)

def log_backward(dout, x):
    return dout / x
'''


@pytest.fixture
def layers(tmp_path, monkeypatch):
    (tmp_path / "cli_layers.py").write_text(_LAYERS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_command_right_and_wrong(layers, capsys):
    shapes = ["--shape", "x=4x10,w=10x5", "--shape", "b=5"]
    assert main(["check", "cli_layers:affine_forward", "cli_layers:affine_backward",
                 *shapes]) == 0
    assert "check_backward(affine_forward, affine_backward): ok" in capsys.readouterr().out
    assert main(["check", "cli_layers.py:affine_forward", "cli_layers.py:affine_backward_mean",
                 *shapes]) == 1
    out = capsys.readouterr().out
    assert "WRONG gradient for b" in out and "scaled by 1/4" in out


def test_check_command_options(layers, capsys):
    assert main(["check", "cli_layers:relu_forward", "cli_layers:relu_backward",
                 "--shape", "x=3x4", "--cache"]) == 0
    assert main(["check", "cli_layers:softmax_loss", "cli_layers:softmax_loss_backward",
                 "--shape", "x=5x3,y=5", "--int", "y=3"]) == 0
    assert main(["check", "cli_layers:log_forward", "cli_layers:log_backward",
                 "--shape", "x=6", "--positive", "x", "--seed", "3"]) == 0
    assert main(["check", "cli_layers:affine_forward", "cli_layers:affine_backward_mean",
                 "--shape", "x=4x10,w=10x5,b=5", "--wrt", "x,w"]) == 0


@pytest.mark.parametrize("argv, culprit", [
    (["cli_layers:affine_forward", "cli_layers:nope", "--shape", "x=2x2"], "no function 'nope'"),
    (["missing_module:f", "cli_layers:affine_backward"], "importing 'missing_module'"),
    (["cli_layers", "cli_layers:affine_backward"], "expected MODULE:FUNCTION"),
    (["cli_layers:affine_forward", "cli_layers:affine_backward", "--shape", "x=4x10,w=10x5"],
     "no shape given for 'b'"),
    (["cli_layers:affine_forward", "cli_layers:affine_backward", "--shape", "q=3"],
     "'q' is not among the parameters"),
    (["cli_layers:affine_forward", "cli_layers:affine_backward",
      "--shape", "x=4x10,w=10x5,b=4"], "shape"),
])
def test_check_command_reports_user_errors(layers, argv, culprit, capsys):
    assert main(["check", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("symdiff:") and culprit in err
