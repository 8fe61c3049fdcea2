"""Print an end user's token, signed as the local issuer: ``JWT_KEY=… python -m api_service.token 7``.

For the local run and trying the API by hand; in production the identity provider issues tokens.
"""

from __future__ import annotations

import argparse

from api_service.auth import issue
from api_service.settings import EndUserTokens
from shared.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api_service.token", description=__doc__)
    parser.add_argument("user_id", type=int, help="the user the token is for (its `sub`)")
    parser.add_argument("--minutes", type=int, default=60, help="how long it is valid (default 60)")
    args = parser.parse_args(argv)
    settings = load_settings(EndUserTokens, "api_service.token")
    if settings.jwt_algorithm != "HS256":
        parser.error(f"JWT_ALGORITHM is {settings.jwt_algorithm}: only the identity provider can sign those")
    print(issue(settings, args.user_id, args.minutes * 60))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
