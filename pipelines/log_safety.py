"""Keep the values a third-party library narrates out of the logs.

Presidio's analyzer logs what it reads: the context words around each match at debug level (names,
e-mail addresses, phone numbers), and an IBAN it could not validate at error level. Its logger gets
:data:`WITHHOLD_VALUES`, which drops its debug and info records and keeps the others with their
arguments withheld, whatever level an operator sets.
"""

from __future__ import annotations

import logging

#: What stands in for each argument of a record kept from a library that narrates its inputs.
WITHHELD = "<withheld>"


class WithholdValues(logging.Filter):
    """Drops records below WARNING; keeps the rest with their ``%`` arguments replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is kept (its arguments withheld)."""
        if record.levelno < logging.WARNING:
            return False
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(WITHHELD for _ in record.args)
        elif record.args:  # a single mapping argument
            record.args = None
            record.msg = f"{record.msg} (arguments withheld)"
        record.exc_info, record.exc_text = None, None  # an exception's message may quote the text
        return True


#: The one filter instance (adding it twice to a logger is a no-op).
WITHHOLD_VALUES = WithholdValues()


def withhold_values(*loggers: str) -> None:
    """Attach :data:`WITHHOLD_VALUES` to the named loggers."""
    for name in loggers:
        logging.getLogger(name).addFilter(WITHHOLD_VALUES)
