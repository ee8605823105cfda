"""Notifications (DESK-10): per-account channels (SMTP e-mail, SMS.ru, FCM push, Telegram,
signed webhook), per-event switches, contact points, and ``notify`` which queues one outbox
message per (recipient, channel, address) in the caller's transaction.

    from hub.notifications import notify
    await notify(session, account_id=..., event="status_changed", ticket=ticket,
                 recipients=[("employee", 3), ("contact", 9)], data={...})
"""

# Importing the package registers the channels' outbox handlers and the desk subscribers, in the
# web process and in ``hub worker`` alike.
from hub.notifications import delivery as _delivery  # noqa: F401
from hub.notifications import subscribers as _subscribers  # noqa: F401
from hub.notifications.schemas import CHANNELS, EVENTS
from hub.notifications.service import notify

__all__ = ["CHANNELS", "EVENTS", "notify"]
