"""Names and URLs of the namespaces tests make: a database, a vhost, a key prefix."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit


def unique_name(prefix: str) -> str:
    """A name no other test uses: ``prefix`` plus 12 hex digits."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def with_path(url: str, path: str) -> str:
    """``url`` with its path (database name, vhost) replaced by ``path``.

    ```py
    from patterns.testing.urls import with_path

    print(with_path("postgresql://postgres@127.0.0.1:5432/test", "test_1a2b3c"))
    #> postgresql://postgres@127.0.0.1:5432/test_1a2b3c
    ```
    """
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + path))
