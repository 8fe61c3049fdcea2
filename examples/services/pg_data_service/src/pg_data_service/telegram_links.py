"""Linking a Telegram chat to a user by proof: a one-time code the user got from the API.

The API asks for a code for the signed-in user; the user sends ``/link <code>`` to the bot, which
redeems it for the chat the message came from. A code is random (50 bits), lives ten minutes,
works once, and is stored only as a hash: a leaked table links nobody.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func
from sqlalchemy.ext.asyncio import AsyncSession

from pg_data_service.repository import UserRepository
from pg_data_service.tables import TelegramLinkCodeRow
from shared.contracts.pg import LinkCode, User, UserUpdate
from shared.problems import ProblemError

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: read off a screen, typed into a chat
LENGTH = 10  # 32**10 = 2**50 codes
LIFETIME = timedelta(minutes=10)


# --8<-- [start:link]
def hash_of(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


async def create_code(session: AsyncSession, user_id: int) -> LinkCode:
    await UserRepository(session).get(user_id)  # 404 for nobody
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    expires_at = datetime.now(UTC) + LIFETIME
    session.add(TelegramLinkCodeRow(code_hash=hash_of(code), user_id=user_id, expires_at=expires_at))
    return LinkCode(code=code, expires_at=expires_at)


async def redeem(session: AsyncSession, code: str, chat_id: int) -> User:
    """Link ``chat_id`` to the code's user, once; one answer (404) for unknown, used and expired."""
    user_id = await session.scalar(
        delete(TelegramLinkCodeRow)
        .where(TelegramLinkCodeRow.code_hash == hash_of(code), TelegramLinkCodeRow.expires_at > func.now())
        .returning(TelegramLinkCodeRow.user_id)
    )
    if user_id is None:
        raise ProblemError(404, "no such link code: it is unknown, used or expired")
    users = UserRepository(session)
    user = await users.get(user_id)
    return await users.update(user_id, UserUpdate(telegram_chat_id=chat_id), user.version)  # 409: chat taken
    # --8<-- [end:link]
