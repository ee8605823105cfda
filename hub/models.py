"""Imports every model module so that ``Base.metadata`` knows every table (Alembic, tests)."""

from hub.accounts import models as accounts_models
from hub.db import Base
from hub.desk import models as desk_models
from hub.desk.sla import models as sla_models
from hub.exchange import models as exchange_models
from hub.intake import models as intake_models
from hub.live import LiveEvent, StagedLiveEvent
from hub.monitoring import models as monitoring_models
from hub.monitoring.alarm import models as alarm_models
from hub.notifications import models as notifications_models
from hub.outbox import models as outbox_models
from hub.payments import models as payments_models
from hub.people import models as people_models
from hub.telephony import models as telephony_models

__all__ = [
    "Base",
    "LiveEvent",
    "StagedLiveEvent",
    "accounts_models",
    "alarm_models",
    "desk_models",
    "exchange_models",
    "intake_models",
    "monitoring_models",
    "notifications_models",
    "outbox_models",
    "payments_models",
    "people_models",
    "sla_models",
    "telephony_models",
]
