"""Notifications (DESK-10): per-account channels (SMTP e-mail, SMS.ru, FCM push, Telegram,
signed webhook), per-event switches, contact points, and ``notify`` which queues one outbox
message per (recipient, channel, address) in the caller's transaction.

    from hub.notifications import notify
    await notify(session, account_id=..., event="status_changed", ticket=ticket,
                 recipients=[("employee", 3), ("contact", 9)], data={...})
"""

from hub.notifications.schemas import CHANNELS, EVENTS
from hub.notifications.service import notify

__all__ = ["CHANNELS", "EVENTS", "notify"]
