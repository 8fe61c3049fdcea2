"""Settings from the environment, and one clear line when one is wrong.

Each service has one pydantic-settings class. :func:`load_settings` turns a
validation error into a line per bad setting, named as the operator sets it
(``DATABASE_URL``, not ``database_url``), and stops start-up with exit status 2.
:func:`parse_service_tokens` reads the ``SERVICE_TOKENS`` a data service checks callers against
(:mod:`shared.auth` does the checking).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated

from pydantic import AnyHttpUrl, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def parse_service_tokens(value: object) -> dict[str, tuple[SecretStr, ...]]:
    """Read ``SERVICE_TOKENS`` (``api=…,bot=…``) into caller → its tokens.

    A caller listed twice has two valid tokens while its token rotates:

    ```py
    from shared.settings import parse_service_tokens

    tokens = parse_service_tokens("api=0ld-api-token-2025,worker=s3cret-worker-token,api=n3w-api-token-2026")
    print(sorted(tokens), len(tokens["api"]), tokens["api"][0])
    #> ['api', 'worker'] 2 **********
    ```
    """
    if isinstance(value, Mapping):  # from code: caller → a token
        items = [f"{caller}={plain(token)}" for caller, token in value.items()]
    else:
        items = str(value).split(",")
    tokens: dict[str, tuple[SecretStr, ...]] = {}
    owners: dict[str, str] = {}
    for item in items:
        caller, sep, token = (part.strip() for part in item.partition("="))
        if not sep or not caller or len(token) < 16:
            raise ValueError(
                "expected caller=token pairs separated by commas, each token at least 16 characters"
            )
        if owners.setdefault(token, caller) != caller:
            raise ValueError(f"one token is listed for both {owners[token]!r} and {caller!r}")
        tokens[caller] = (*tokens.get(caller, ()), SecretStr(token))
    return tokens


def plain(token: object) -> str:
    return token.get_secret_value() if isinstance(token, SecretStr) else str(token)


type ServiceTokens = Annotated[
    dict[str, tuple[SecretStr, ...]], NoDecode, BeforeValidator(parse_service_tokens)
]


class ServiceSettings(BaseSettings):
    """What every HTTP service reads: where to listen and how verbose to be."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)]
    log_level: str = "info"
    # Observability: traces go to an OTLP/HTTP collector (Jaeger, the OpenTelemetry Collector)
    # when an endpoint is set; the ratio applies to traces that start here.
    otel_exporter_otlp_endpoint: AnyHttpUrl | None = None
    otel_traces_sampler_arg: Annotated[float, Field(ge=0, le=1)] = 1.0
    deployment_environment: str = "local"
    # Set in every deploy file: /metrics then answers only Prometheus (Authorization: Bearer <token>).
    metrics_token: Annotated[SecretStr, Field(min_length=16)] | None = None


def load_settings[S: BaseSettings](cls: type[S], service: str) -> S:
    """Build ``cls`` from the environment or exit 2 with one line per bad setting."""
    try:
        return cls()
    except ValidationError as error:
        for problem in error.errors():
            name = "_".join(str(part) for part in problem["loc"][:1]).upper()
            print(f"{service}: setting {name}: {problem['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


class DataClientSettings(ServiceSettings):
    """What every business service reads to reach the data services."""

    pg_data_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8001")
    mongo_data_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8002")
    service_token: SecretStr
    data_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 2.0
