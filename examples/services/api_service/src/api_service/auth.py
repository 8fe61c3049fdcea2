"""End users at the API: OAuth2 bearer tokens (JWTs), verified with PyJWT.

The API issues no tokens: an identity provider does, and the API is told its issuer, the
audience the tokens are for, and the key that verifies their signatures (a shared secret for
HS256, a public key in PEM for RS256 or ES256). A token's ``sub`` is the user's id.

A user reaches only their own resources. Another user's id answers 404, exactly as an id that
does not exist, so ids cannot be probed for who has an account.
"""

from __future__ import annotations

import time
from typing import Annotated

import jwt
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api_service.settings import EndUserTokens
from shared.contracts.ids import Id
from shared.problems import ProblemError

bearer = HTTPBearer(auto_error=False, description="A token from the identity provider; `sub` is the user id")


# --8<-- [start:end-user]
class EndUsers:
    """Who is calling: the user id in a valid token, or 401."""

    def __init__(self, settings: EndUserTokens) -> None:
        self.key = settings.jwt_key.get_secret_value()
        self.algorithm = settings.jwt_algorithm
        self.issuer, self.audience = settings.jwt_issuer, settings.jwt_audience

    def user_id(self, token: str) -> int:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],  # one, from settings: never what the token's header says
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=30,
            )
            return int(claims["sub"])
        except (jwt.InvalidTokenError, ValueError) as error:  # ValueError: a sub that is no id
            raise unauthorized(f"the token is not valid: {error}") from None


def unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> int:
    if credentials is None:
        raise ProblemError(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    users: EndUsers = request.app.state.end_users
    return users.user_id(credentials.credentials)


type CurrentUser = Annotated[int, Depends(current_user)]


async def own(user_id: Annotated[Id, Path()], current: CurrentUser) -> int:
    """``user_id`` if it is the caller's own; 404, as for a user that does not exist, if not."""
    if user_id != current:
        raise ProblemError(404, f"user {user_id} not found")
    return user_id
    # --8<-- [end:end-user]


# --8<-- [start:issue]
def issue(settings: EndUserTokens, user_id: int, lifetime_seconds: int = 3600) -> str:
    """A token as the identity provider would sign it: for the local run and the tests (HS256 only:
    a provider with a private key signs its own)."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + lifetime_seconds,
    }
    return jwt.encode(claims, settings.jwt_key.get_secret_value(), algorithm="HS256")
    # --8<-- [end:issue]
