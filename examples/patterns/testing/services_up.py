"""``uv run python -m patterns.testing.services_up``: where would the tests find each service?"""

from __future__ import annotations

from patterns.testing.service_resolution import MONGODB, POSTGRES, RABBITMQ, REDIS, describe


# --8<-- [start:main]
def main() -> int:
    """Print where the tests would find each service, starting nothing; exit 1 if one is missing."""
    results = [describe(dependency) for dependency in (POSTGRES, REDIS, RABBITMQ, MONGODB)]
    for _, line in results:
        print(line)
    return 0 if all(found for found, _ in results) else 1
    # --8<-- [end:main]


if __name__ == "__main__":
    raise SystemExit(main())
