"""The typed client of ``pg_data_service``: users and orders as pydantic models, never rows."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from shared.clients.http import DataServiceClient, query
from shared.contracts.pages import Page
from shared.contracts.pg import (
    CancellationReason,
    LinkCode,
    Order,
    OrderCreate,
    OrderStatus,
    TelegramLink,
    User,
    UserCreate,
    UserUpdate,
)


def _key(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def _if_match(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


# --8<-- [start:client]
class PgDataClient(DataServiceClient):
    """Users and orders, through ``pg_data_service`` (port 8001)."""

    def __init__(self, base_url: str, token: SecretStr, **options: Any) -> None:
        super().__init__("pg_data_service", base_url, token, **options)

    async def create_user(self, user: UserCreate, idempotency_key: str | None = None) -> User:
        response = await self.request(
            "POST", "/users", json=user.model_dump(mode="json"), headers=_key(idempotency_key)
        )
        return User.model_validate(response.body)

    async def get_user(self, user_id: int) -> User:
        return User.model_validate((await self.request("GET", f"/users/{user_id}")).body)

    async def find_user_by_chat(self, chat_id: int) -> User | None:
        page = await self.request("GET", "/users", params={"telegram_chat_id": chat_id, "limit": 1})
        users = Page[User].model_validate(page.body).items
        return users[0] if users else None

    async def create_link_code(self, user_id: int) -> LinkCode:
        return LinkCode.model_validate(
            (await self.request("POST", f"/users/{user_id}/telegram-link-codes")).body
        )

    async def link_telegram(self, code: str, chat_id: int) -> User:
        link = TelegramLink(code=code, chat_id=chat_id)
        return User.model_validate(
            (await self.request("POST", "/telegram-links", json=link.model_dump())).body
        )

    async def update_user(self, user_id: int, change: UserUpdate, version: int) -> User:
        response = await self.request(
            "PATCH",
            f"/users/{user_id}",
            json=change.model_dump(mode="json", exclude_unset=True),
            headers=_if_match(version),
        )
        return User.model_validate(response.body)
        # --8<-- [end:client]

    async def create_order(self, order: OrderCreate, idempotency_key: str | None = None) -> Order:
        response = await self.request(
            "POST", "/orders", json=order.model_dump(mode="json"), headers=_key(idempotency_key)
        )
        return Order.model_validate(response.body)

    async def get_order(self, order_id: int) -> Order:
        return Order.model_validate((await self.request("GET", f"/orders/{order_id}")).body)

    async def list_orders(
        self,
        *,
        user_id: int | None = None,
        status: OrderStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Order]:
        params = query(limit=limit, user_id=user_id, status=status and status.value, cursor=cursor)
        return Page[Order].model_validate((await self.request("GET", "/orders", params=params)).body)

    # --8<-- [start:cancel]
    async def cancel_order(
        self, order_id: int, reason: CancellationReason, version: int | None = None
    ) -> Order:
        """Cancel once, however often it is called (so the shared client may retry it); with
        ``version``, only if the order is still at it (else :class:`Conflict`)."""
        response = await self.request(
            "POST",
            f"/orders/{order_id}/cancellation",
            json={"reason": reason.value},
            headers=_if_match(version) if version is not None else {},
            idempotent=True,
        )
        return Order.model_validate(response.body)
        # --8<-- [end:cancel]

    async def set_order_status(self, order_id: int, status: OrderStatus, version: int) -> Order:
        response = await self.request(
            "PATCH", f"/orders/{order_id}", json={"status": status.value}, headers=_if_match(version)
        )
        return Order.model_validate(response.body)
