def to_sympy(e): raise NotImplementedError
def from_sympy(e, shapes=None): raise NotImplementedError
