def parse(text, shapes=None): raise NotImplementedError
