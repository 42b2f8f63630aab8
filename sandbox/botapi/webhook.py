"""Webhook delivery as Telegram's Bot API server does it (tdlib/telegram-bot-api, WebhookActor):

- updates wait in one queue per chat; each queue sends one update at a time, and its next only
  after the bot answered 2xx for this one, so a chat's updates arrive in order;
- different chats' updates go out side by side, up to `max_connections` at once;
- a non-2xx answer, a dropped connection or no answer within `DELIVERY_TIMEOUT` is retried with
  a growing pause (a 429's Retry-After is honoured), the chat's later updates waiting behind;
- the secret token, when set, travels in `X-Telegram-Bot-Api-Secret-Token`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox.botapi.state import BotApiState

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
DELIVERY_TIMEOUT = 10.0  # seconds a delivery may take before it counts as failed
MAX_PAUSE = 10.0
JSON = dict[str, Any]


def queue_of(update: JSON) -> int | str:
    """The queue an update waits in: its chat (its sender's without one), else its own."""
    for kind, body in update.items():
        if not isinstance(body, dict):
            continue
        message = body.get("message") if kind == "callback_query" else body
        chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and "id" in chat:
            return int(chat["id"])
        sender = body.get("from")
        if isinstance(sender, dict) and "id" in sender:
            return int(sender["id"])
    return f"update-{update.get('update_id')}"


@dataclass
class _Retry:
    failures: int = 0
    not_before: float = 0.0


@dataclass
class WebhookDelivery:
    """The delivery loop's memory: which queues have an update on the wire, which wait."""

    state: BotApiState
    timeout: float = DELIVERY_TIMEOUT
    in_flight: dict[int | str, asyncio.Task[None]] = field(default_factory=dict)
    retries: dict[int, _Retry] = field(default_factory=dict)
    delivered: int = 0
    failed: int = 0
    most_at_once: int = 0

    async def run(self) -> None:
        """Delivers until the state closes."""
        state = self.state
        while not state.closed:
            hook = state.webhook
            wake_in = 30.0
            if hook is not None:
                wake_in = self._start_ready(hook.max_connections)
            await state.updates_signal.wait(wake_in)
        for task in self.in_flight.values():
            task.cancel()

    def _start_ready(self, max_connections: int) -> float:
        """Sends the first update of every idle queue whose pause is over; returns how long
        until the next pause ends."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        seen: set[int | str] = set()
        wake_in = 30.0
        for update in list(self.state.updates):
            key = queue_of(update)
            if key in seen:
                continue  # only a queue's first update may go out
            seen.add(key)
            if key in self.in_flight:
                continue
            if len(self.in_flight) >= max_connections:
                break
            retry = self.retries.get(update["update_id"])
            if retry is not None and retry.not_before > now:
                wake_in = min(wake_in, retry.not_before - now)
                continue
            self.in_flight[key] = loop.create_task(self._send(key, update))
            self.most_at_once = max(self.most_at_once, len(self.in_flight))
        return max(wake_in, 0.01)

    async def _send(self, key: int | str, update: JSON) -> None:
        state = self.state
        try:
            hook = state.webhook
            if hook is None:
                return
            headers = {"Content-Type": "application/json"}
            if hook.secret_token is not None:
                headers[SECRET_HEADER] = hook.secret_token.get_secret_value()
            retry_after = 0.0
            try:
                response = await state.http().post(
                    hook.url,
                    content=json.dumps(update).encode(),
                    headers=headers,
                    timeout=self.timeout,
                )
                error = (
                    None
                    if 200 <= response.status_code < 300
                    else f"Wrong response from the webhook: {response.status_code} "
                    f"{response.reason_phrase}"
                )
                with contextlib.suppress(ValueError):
                    retry_after = float(response.headers.get("retry-after", 0))
            except httpx.TimeoutException:
                error = "Read timeout expired"
            except httpx.HTTPError as exc:
                error = f"Connection failed: {type(exc).__name__}"
            update_id = update["update_id"]
            if error is None:
                self.delivered += 1
                self.retries.pop(update_id, None)
                state.updates = [u for u in state.updates if u["update_id"] != update_id]
                return
            self.failed += 1
            hook.last_error_date = state.now()
            hook.last_error_message = error
            logger.info("webhook delivery of update %s failed: %s", update_id, error)
            retry = self.retries.setdefault(update_id, _Retry())
            retry.failures += 1
            pause = retry_after or min(MAX_PAUSE, 0.125 * 2**retry.failures)
            retry.not_before = asyncio.get_running_loop().time() + pause
        finally:
            self.in_flight.pop(key, None)
            state.updates_signal.fire()


async def deliver_webhooks(state: BotApiState) -> None:
    """Runs Telegram-like webhook delivery for `state` (see the module docstring)."""
    delivery = WebhookDelivery(state)
    state.webhook_delivery = delivery
    await delivery.run()
