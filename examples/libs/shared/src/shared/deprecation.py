"""A route on its way out: it answers as before, and says since when, until when, and what replaces it.

The headers are the standard ones, so a client library or gateway can act on them without
reading our docs: ``Deprecation`` (RFC 9745, a structured-field date: ``@`` and Unix seconds),
``Sunset`` (RFC 8594, an HTTP date) and ``Link`` with ``rel="successor-version"`` (RFC 8288).
After the sunset the route answers ``410 Gone`` with the successor, until it is deleted.

```py
from datetime import date

from shared.deprecation import Deprecated

retiring = Deprecated(since=date(2026, 12, 1), sunset=date(2027, 6, 1))
print(retiring.headers("/users/7/orders")["Sunset"])
#> Tue, 01 Jun 2027 00:00:00 GMT
```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from email.utils import format_datetime

from shared.problems import ProblemError


# --8<-- [start:deprecated]
@dataclass(frozen=True)
class Deprecated:
    since: date
    sunset: date

    def headers(self, successor: str) -> dict[str, str]:
        """What every answer of the deprecated route carries."""
        return {
            "Deprecation": f"@{int(_midnight(self.since).timestamp())}",
            "Sunset": format_datetime(_midnight(self.sunset), usegmt=True),
            "Link": _successor(successor),
        }

    def check(self, successor: str, today: date | None = None) -> None:
        """410 Gone from the sunset on, naming the successor."""
        if (today or datetime.now(UTC).date()) >= self.sunset:
            raise ProblemError(
                410,
                f"this route was removed on {self.sunset.isoformat()}: use {successor}",
                headers={"Link": _successor(successor)},
            )
            # --8<-- [end:deprecated]


def _successor(path: str) -> str:
    return f'<{path}>; rel="successor-version"'


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)
