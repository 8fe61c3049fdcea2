"""Service-to-service authentication: a bearer token per calling service (two while it rotates).

A data service knows its callers by name (``api``, ``bot``, ``worker``) and what each
may do. A request without a valid token gets 401; a known caller asking for an
operation it is not granted gets 403. Tokens are compared in constant time.
"""

import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from shared.problems import ProblemError

type Permissions = Mapping[str, frozenset[str]]


# --8<-- [start:caller-auth]
bearer = HTTPBearer(auto_error=False, description="A token from this service's SERVICE_TOKENS")


class CallerAuth:
    """FastAPI dependencies that name the calling service and check what it may do."""

    def __init__(self, tokens: Mapping[str, Sequence[SecretStr]], permissions: Permissions) -> None:
        self._tokens = [
            (caller, token.get_secret_value().encode())
            for caller, listed in tokens.items()
            for token in listed
        ]
        self._permissions = permissions

    def caller(self, presented: str) -> str | None:
        """The caller whose token this is; every token is compared, in constant time."""
        found = None
        for caller, token in self._tokens:
            if hmac.compare_digest(token, presented.encode()):
                found = caller
        return found

    def authorize(self, credentials: HTTPAuthorizationCredentials | None, permission: str) -> str:
        """The caller presenting ``credentials``: 401 if nobody, 403 if not granted ``permission``."""
        caller = self.caller(credentials.credentials) if credentials else None
        if caller is None:
            raise ProblemError(
                401, "a valid service token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        if permission not in self._permissions.get(caller, frozenset()):
            raise ProblemError(403, f"caller {caller!r} may not {permission}")
        return caller


def requires(permission: str) -> Callable[..., Awaitable[str]]:
    """A route dependency: the calling service's name, checked by the app's ``state.auth``.

    Declared once per permission next to the routes, e.g.
    ``type WritesOrders = Annotated[str, Depends(requires("orders:write"))]``.
    """

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> str:
        auth: CallerAuth = request.app.state.auth
        return auth.authorize(credentials, permission)

    return dependency
    # --8<-- [end:caller-auth]
