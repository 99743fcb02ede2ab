"""The composition root: the ``groundwork`` command builds settings and wires every layer below."""
