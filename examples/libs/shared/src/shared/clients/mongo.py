"""The typed client of ``mongo_data_service``: activity and preferences as pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from shared.clients.http import DataServiceClient, query
from shared.contracts.mongo import Activity, ActivityCreate, Preferences, PreferencesUpdate
from shared.contracts.pages import Page


class MongoDataClient(DataServiceClient):
    """Activity and preferences, through ``mongo_data_service`` (port 8002)."""

    def __init__(self, base_url: str, token: SecretStr, **options: Any) -> None:
        super().__init__("mongo_data_service", base_url, token, **options)

    async def append_activity(
        self,
        user_id: int,
        kind: str,
        payload: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Activity:
        body = ActivityCreate(user_id=user_id, kind=kind, payload=payload or {}).model_dump(mode="json")
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return Activity.model_validate(
            (await self.request("POST", "/activity", json=body, headers=headers)).body
        )

    async def find_activity(self, idempotency_key: str) -> Activity | None:
        """What this service appended under ``idempotency_key``, or ``None``."""
        response = await self.request("GET", "/activity/by-key", params={"key": idempotency_key})
        return None if response.body is None else Activity.model_validate(response.body)

    async def list_activity(
        self, user_id: int, *, kind: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> Page[Activity]:
        params = query(user_id=user_id, limit=limit, kind=kind, cursor=cursor)
        return Page[Activity].model_validate((await self.request("GET", "/activity", params=params)).body)

    async def get_preferences(self, user_id: int) -> Preferences:
        return Preferences.model_validate((await self.request("GET", f"/preferences/{user_id}")).body)

    async def put_preferences(self, user_id: int, preferences: PreferencesUpdate) -> Preferences:
        response = await self.request(
            "PUT", f"/preferences/{user_id}", json=preferences.model_dump(mode="json")
        )
        return Preferences.model_validate(response.body)
