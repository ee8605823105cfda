"""The durable outbox: every outbound effect is written in the transaction of the change that
causes it, and delivered after commit by a worker with bounded retries and a dead-letter state.

    await enqueue(session, account_id=..., topic="...", payload={...}, idempotency_key="...")

    @outbox_handler("...")  # marks only; hub/wiring.py lists it and registers it
    async def deliver(ctx: DeliveryContext, message: MessageView) -> None: ...
"""

from hub.outbox.handlers import (
    DeliveryContext,
    MessageView,
    PermanentDeliveryError,
    TransientDeliveryError,
    outbox_handler,
    register_handler,
)
from hub.outbox.service import Outgoing, enqueue, enqueue_many

__all__ = [
    "DeliveryContext",
    "MessageView",
    "Outgoing",
    "PermanentDeliveryError",
    "TransientDeliveryError",
    "enqueue",
    "enqueue_many",
    "outbox_handler",
    "register_handler",
]
