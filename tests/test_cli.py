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
