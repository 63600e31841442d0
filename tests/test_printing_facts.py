"""Printing, LaTeX and SymPy facts read from the ops, and the value-preserving rewrites
(issue 10, items 11, 13, 14 and 15)."""
import math

import numpy as np
import pytest

import symdiff as sd


# -- item 14: str bounds the text length, not the node count ----------------------------------
def test_str_of_a_long_chain_prints_its_linear_infix():
    x = sd.var("x")
    y = x
    for _ in range(20_000):
        y = sd.sin(y)
    text = str(y)
    assert text == "sin(" * 20_000 + "x" + ")" * 20_000


def test_str_of_an_exponential_dag_still_summarizes():
    x = sd.var("x")
    y = x
    for _ in range(60):
        y = y * y + y
    assert "too large to print inline" in str(y)
