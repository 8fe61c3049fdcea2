"""Service-to-service authentication: one bearer token per calling service.

A data service knows its callers by name (``api``, ``bot``, ``worker``) and what each
may do. A request without a valid token gets 401; a known caller asking for an
operation it is not granted gets 403. Tokens are compared in constant time.
"""

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from shared.problems import ProblemError

type Permissions = Mapping[str, frozenset[str]]


def parse_service_tokens(value: object) -> dict[str, SecretStr]:
    """Read ``SERVICE_TOKENS`` (``api=…,bot=…``) into caller → token.

    ```py
    from shared.auth import parse_service_tokens

    tokens = parse_service_tokens("api=s3cret-api-token,worker=s3cret-worker-token")
    print(sorted(tokens), tokens["api"])
    #> ['api', 'worker'] **********
    ```
    """
    if isinstance(value, Mapping):
        return {str(k): v if isinstance(v, SecretStr) else SecretStr(str(v)) for k, v in value.items()}
    tokens: dict[str, SecretStr] = {}
    for item in str(value).split(","):
        caller, sep, token = item.strip().partition("=")
        if not sep or not caller.strip() or len(token.strip()) < 16:
            raise ValueError(
                "expected caller=token pairs separated by commas, each token at least 16 characters"
            )
        tokens[caller.strip()] = SecretStr(token.strip())
    return tokens


# --8<-- [start:caller-auth]
bearer = HTTPBearer(auto_error=False, description="A token from this service's SERVICE_TOKENS")


class CallerAuth:
    """FastAPI dependencies that name the calling service and check what it may do."""

    def __init__(self, tokens: Mapping[str, SecretStr], permissions: Permissions) -> None:
        self._tokens = {caller: token.get_secret_value().encode() for caller, token in tokens.items()}
        self._permissions = permissions

    def caller(self, presented: str) -> str | None:
        """The caller whose token this is; every token is compared, in constant time."""
        found = None
        for caller, token in self._tokens.items():
            if hmac.compare_digest(token, presented.encode()):
                found = caller
        return found

    def require(self, permission: str) -> Callable[..., Awaitable[str]]:
        async def dependency(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ) -> str:
            caller = self.caller(credentials.credentials) if credentials else None
            if caller is None:
                raise ProblemError(
                    401, "a valid service token is required", headers={"WWW-Authenticate": "Bearer"}
                )
            if permission not in self._permissions.get(caller, frozenset()):
                raise ProblemError(403, f"caller {caller!r} may not {permission}")
            return caller

        return dependency
        # --8<-- [end:caller-auth]
