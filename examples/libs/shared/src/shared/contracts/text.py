"""Text every store can hold, refused at the edge when it cannot.

Python's JSON parser accepts a lone surrogate (``"\\ud800"``), which no UTF-8 encoder will write:
asyncpg and PyMongo fail on it after validation passed. PostgreSQL's ``text`` cannot hold NUL. Both
would reach the catch-all as a database error (a 503 the client retries), so they are a 422 here.
"""

from __future__ import annotations

import unicodedata


# --8<-- [start:text]
def encodable(value: str) -> str:
    """Refuse a lone surrogate: the one thing a Python ``str`` holds that UTF-8 cannot."""
    if any(unicodedata.category(char) == "Cs" for char in value):
        raise ValueError("text may not contain a lone surrogate (\\ud800-\\udfff): it is not UTF-8")
    return value


def printable(value: str) -> str:
    """Refuse control characters too (NUL, which PostgreSQL's text cannot hold, line breaks, bells):
    for a one-line value such as a name."""
    if any(unicodedata.category(char) == "Cc" for char in encodable(value)):
        raise ValueError("text may not contain control characters (NUL, tab, line breaks)")
    return value
    # --8<-- [end:text]
