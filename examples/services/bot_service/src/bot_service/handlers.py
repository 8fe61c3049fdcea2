"""The bot's commands. Like every business service, it reaches data only through the clients."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.exceptions import TelegramForbiddenError
from aiogram.filters import Command, CommandObject, CommandStart, ExceptionTypeFilter
from aiogram.types import ErrorEvent, Message
from pydantic import ValidationError

from shared.clients.errors import Conflict, DataServiceError, DependencyUnavailable, InvalidRequest, NotFound
from shared.clients.mongo import MongoDataClient
from shared.clients.pg import PgDataClient
from shared.contracts.pg import OrderStatus, User, UserCreate
from shared.events.consumer import Handler, Permanent
from shared.events.envelope import Envelope, Event, OrderCancelled, OrderConfirmed
from shared.observability.metrics import NOTIFICATIONS, USERS_REGISTERED


def placeholder_email(chat_id: int) -> str:
    """Telegram gives no email; users registered by the bot get a reserved, undeliverable one."""
    return f"telegram-{chat_id}@users.example.org"


# --8<-- [start:handlers]
# The clients come from the dispatcher's workflow data (``Dispatcher(pg=..., mongo=...)``), aiogram's
# dependency injection: a handler names what it needs, as a FastAPI route does with app state.
async def start(message: Message, pg: PgDataClient) -> None:
    if user := await pg.find_user_by_chat(message.chat.id):
        await message.answer(f"Welcome back, {user.name}!")
        return
    name = (message.from_user.full_name if message.from_user else "") or "Telegram user"
    new = UserCreate(
        email=placeholder_email(message.chat.id), name=name[:120], telegram_chat_id=message.chat.id
    )
    # Telegram re-delivers updates after a crash: the key makes /start create one user, ever.
    user = await pg.create_user(new, idempotency_key=f"telegram-start-{message.chat.id}")
    USERS_REGISTERED.labels("telegram").inc()
    await message.answer(f"Welcome, {user.name}! You are customer #{user.id}.")


async def link(message: Message, command: CommandObject, pg: PgDataClient) -> None:
    """``/link <code>``: this chat gets the notifications of the user the code was made for."""
    if not command.args:
        await message.answer("Send /link followed by the code the app gave you.")
        return
    try:
        user = await pg.link_telegram(command.args.strip()[:32], message.chat.id)
    except (NotFound, InvalidRequest, ValidationError):  # a malformed code is as unknown as a wrong one
        await message.answer("That code is unknown, used or expired: ask the app for a new one.")
        return
    except Conflict:
        await message.answer("This chat is linked to another account already.")
        return
    await message.answer(f"Linked, {user.name}: your order notifications come here now.")


async def orders(message: Message, pg: PgDataClient) -> None:
    if user := await current_user(message, pg):
        page = await pg.list_orders(user_id=user.id, limit=5)
        lines = [f"#{o.id} · {o.status} · {o.total}" for o in page.items]
        await message.answer("\n".join(["Your latest orders:", *lines]) if lines else "No orders yet.")


async def activity(message: Message, pg: PgDataClient, mongo: MongoDataClient) -> None:
    if user := await current_user(message, pg):
        page = await mongo.list_activity(user.id, limit=5)
        lines = [f"{a.at:%Y-%m-%d %H:%M} · {a.kind}" for a in page.items]
        await message.answer("\n".join(["Recent activity:", *lines]) if lines else "No activity yet.")


async def data_unavailable(event: ErrorEvent) -> None:
    if event.update.message is not None:
        busy = isinstance(event.exception, DependencyUnavailable)
        await event.update.message.answer(
            "We are busy right now, please try again in a minute." if busy else "Sorry, that did not work."
        )


async def current_user(message: Message, pg: PgDataClient) -> User | None:
    user = await pg.find_user_by_chat(message.chat.id)
    if user is None:
        await message.answer("I don't know you yet: send /start first.")
    return user


def build_router() -> Router:
    """The commands; one router per dispatcher (an aiogram router joins exactly one)."""
    router = Router(name="commands")
    router.message.register(start, CommandStart())
    router.message.register(link, Command("link"))
    router.message.register(orders, Command("orders"))
    router.message.register(activity, Command("activity"))
    router.errors.register(data_unavailable, ExceptionTypeFilter(DataServiceError))
    return router
    # --8<-- [end:handlers]


# --8<-- [start:notify]
def on_order_confirmed(bot: Bot, pg: PgDataClient) -> Handler:
    """Tell the user on Telegram that their order is confirmed (if they linked a chat), unless it
    has been cancelled since: an announcement held up in a retry queue must not arrive after the
    cancellation's and contradict it."""

    async def notify(event: Envelope, data: Event) -> None:
        assert isinstance(data, OrderConfirmed)
        try:
            order = await pg.get_order(data.order_id)
        except NotFound as error:
            raise Permanent(f"order {data.order_id} does not exist") from error
        if order.status == OrderStatus.cancelled:
            NOTIFICATIONS.labels("outdated").inc()
            return
        await tell(bot, pg, data.user_id, f"Your order #{data.order_id} is confirmed.")

    return notify


async def tell(bot: Bot, pg: PgDataClient, user_id: int, text: str) -> None:
    """Send ``text`` to the user's linked chat; raise for a retry, or :class:`Permanent`."""
    user = await pg.get_user(user_id)
    if user.telegram_chat_id is None:
        NOTIFICATIONS.labels("no_chat").inc()
        return
    try:
        await bot.send_message(user.telegram_chat_id, text)
    except TelegramForbiddenError as error:  # the user blocked the bot: no retry will deliver it
        NOTIFICATIONS.labels("blocked").inc()
        raise Permanent(f"chat {user.telegram_chat_id}: {error.message}") from error
    except Exception:  # flood control (429 with retry_after), Telegram down: retried later
        NOTIFICATIONS.labels("failed").inc()
        raise
    NOTIFICATIONS.labels("sent").inc()
    # --8<-- [end:notify]


# --8<-- [start:cancelled]
BECAUSE = {
    "customer": ", as you asked",
    "not_confirmed_in_time": ": we could not confirm it in time",
    "support": " by our support team",
}


def on_order_cancelled(bot: Bot, pg: PgDataClient) -> Handler:
    """Tell the user their order is cancelled, and why: the last step of the cancellation saga."""

    async def notify(event: Envelope, data: Event) -> None:
        assert isinstance(data, OrderCancelled)
        because = BECAUSE.get(data.reason, "")  # a reason added after this bot shipped still tells
        await tell(bot, pg, data.user_id, f"Your order #{data.order_id} is cancelled{because}.")

    return notify
    # --8<-- [end:cancelled]
