"""The fake Telegram's routes for playing the user by hand, as the quickstart uses them."""

from __future__ import annotations

import aiohttp

from reference_system.fake_telegram import Sent, fake_telegram


async def test_a_message_posted_to_a_chat_reaches_the_bot_and_the_bots_replies_are_listed() -> None:
    async with fake_telegram() as (fake, url), aiohttp.ClientSession(url) as http:
        async with http.post("/chats/4242/messages", data="/link ABCDEF1234") as sent:
            assert sent.status == 202
        [update] = fake.updates  # what the bot's next getUpdates returns
        assert (update["message"]["chat"]["id"], update["message"]["text"]) == (4242, "/link ABCDEF1234")
        fake.sent += [Sent(4242, "Linked, Ada"), Sent(7, "someone else's")]
        async with http.get("/chats/4242/messages") as listed:
            assert await listed.json() == ["Linked, Ada"]


async def test_a_chat_that_is_not_a_number_or_an_empty_message_is_a_400_that_says_why() -> None:
    async with fake_telegram() as (fake, url), aiohttp.ClientSession(url) as http:
        async with http.post("/chats/me/messages", data="/start") as wrong_chat:
            assert (wrong_chat.status, await wrong_chat.json()) == (400, {"error": "the chat id is a number"})
        async with http.post("/chats/1/messages", data="  ") as empty:
            assert empty.status == 400
            assert "request body" in (await empty.json())["error"]
        assert fake.updates == []
