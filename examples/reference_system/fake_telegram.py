"""A fake Telegram Bot API server on loopback, so the real aiogram bot runs end to end offline.

aiogram lets a bot talk to a custom Bot API server (``TelegramAPIServer``); pointed here,
the bot long-polls ``getUpdates`` and calls ``sendMessage`` over real HTTP, and whoever holds
the fake (``python -m reference_system`` without a ``TELEGRAM_API_URL``, or a test) plays the
user: it pushes updates in and reads what the bot sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from reference_system.ports import free_port

BOT_USER = {"id": 100_000_001, "is_bot": True, "first_name": "Hybrid", "username": "hybrid_patterns_bot"}


@dataclass
class Sent:
    chat_id: int
    text: str


# --8<-- [start:fake]
@dataclass
class FakeTelegram:
    """The Bot API methods the bot uses: getMe, getUpdates (long polling), sendMessage."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    # What the real API does to a bot now and then: users who blocked it (403), and flood
    # control (429 with retry_after) for the next ``rate_limited`` messages.
    blocked: set[int] = field(default_factory=set)
    rate_limited: int = 0
    retry_after: int = 1
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _answering: asyncio.Event = field(default_factory=asyncio.Event)
    _waiting: int = 0

    def __post_init__(self) -> None:
        self._answering.set()

    def hold_answers(self) -> None:
        """From now on, record each message sent, then keep the bot waiting for the answer."""
        self._answering.clear()

    def release_answers(self) -> None:
        self._answering.set()

    async def held(self, count: int, timeout: float = 30) -> None:
        """Wait until ``count`` sends are recorded and waiting for their answer."""
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._waiting >= count), timeout)
        except TimeoutError:
            seen = f"{self._waiting} waiting, {len(self.sent)} sent in all"
            raise TimeoutError(f"{count} sends held: not within {timeout:g} s ({seen})") from None

    async def send_command(self, chat_id: int, text: str, first_name: str = "Alice") -> None:
        """Queue a user's message for the bot's next getUpdates."""
        update_id = next(self._ids)
        command = text.split()[0]
        message = {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": first_name},
            "from": {"id": chat_id, "is_bot": False, "first_name": first_name},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
        }
        async with self._changed:
            self.updates.append({"update_id": update_id, "message": message})
            self._changed.notify_all()

    async def replies(self, chat_id: int, count: int, timeout: float = 10) -> list[str]:
        """Wait until the bot has sent ``count`` messages to ``chat_id``; return their texts."""

        def mine() -> list[str]:
            return [sent.text for sent in self.sent if sent.chat_id == chat_id]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(mine()) >= count), timeout)
        return mine()

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()
        data: dict[str, Any] = dict(await request.post()) if request.can_read_body else {}
        match method:
            case "getme":
                result: Any = BOT_USER
            case "getupdates":
                result = await self._get_updates(int(data.get("offset", 0)), float(data.get("timeout", 0)))
            case "sendmessage":
                chat_id = int(data["chat_id"])
                if chat_id in self.blocked:
                    return _error(403, "Forbidden: bot was blocked by the user")
                if self.rate_limited > 0:
                    self.rate_limited -= 1
                    description = f"Too Many Requests: retry after {self.retry_after}"
                    return _error(429, description, {"retry_after": self.retry_after})
                result = await self._send_message(chat_id, str(data["text"]))
            case _:
                result = True
        return web.json_response({"ok": True, "result": result})
        # --8<-- [end:fake]

    async def _get_updates(self, offset: int, timeout: float) -> list[dict[str, Any]]:
        def pending() -> list[dict[str, Any]]:
            return [update for update in self.updates if update["update_id"] >= offset]

        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(pending), min(timeout, 1.0))
            return pending()

    async def _send_message(self, chat_id: int, text: str) -> dict[str, Any]:
        async with self._changed:
            self.sent.append(Sent(chat_id, text))
            self._waiting += 1
            self._changed.notify_all()
        try:
            await self._answering.wait()
        finally:
            async with self._changed:
                self._waiting -= 1
        return {
            "message_id": len(self.sent),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            "text": text,
        }

    # --8<-- [start:chat]
    async def chat(self, request: web.Request) -> web.Response:
        """Play the user by hand: ``POST /chats/{id}/messages`` with a text body sends it to the bot as
        that chat; ``GET`` lists what the bot has sent to that chat, oldest first."""
        try:
            chat_id = int(request.match_info["chat_id"])
        except ValueError:
            return web.json_response({"error": "the chat id is a number"}, status=400)
        if request.method == "POST":
            text = (await request.text()).strip()
            if not text:
                return web.json_response({"error": "send the message as the request body"}, status=400)
            await self.send_command(chat_id, text)
            return web.json_response({"sent": text}, status=202)
        return web.json_response([sent.text for sent in self.sent if sent.chat_id == chat_id])
        # --8<-- [end:chat]


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


@asynccontextmanager
async def fake_telegram(port: int | None = None) -> AsyncIterator[tuple[FakeTelegram, str]]:
    """Run a :class:`FakeTelegram` on 127.0.0.1; yield it and its base URL."""
    fake = FakeTelegram()
    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", fake.handle)
    app.router.add_route("GET", "/chats/{chat_id}/messages", fake.chat)
    app.router.add_route("POST", "/chats/{chat_id}/messages", fake.chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
