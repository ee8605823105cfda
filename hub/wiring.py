"""Every desk-event subscriber, outbox handler and periodic job of the hub, listed in one place.

:func:`wire` registers them; the app factory (``hub.app.create_app``) and ``hub worker`` call it.
Nothing in ``hub/`` registers anything when it is imported, so what runs is what is listed here,
in the order listed here, whatever imported what first.

The decorators ``@subscriber(EventType)``, ``@outbox_handler(topic)`` and
``@periodic_job(name, interval)`` stay beside the functions, because the event type, the topic and
the interval belong with the code that handles them; they only *mark* the function (an attribute
on it). Registration is a plain call made here. ``tests/test_wiring.py`` imports every module under
``hub/`` and fails when a marked function is missing from these lists (a forgotten handler would
otherwise sit silently unregistered), when an enqueued topic has no handler, and when a module
imports something only for its side effect.

Registering is idempotent: tests build many apps in one process, and each calls :func:`wire`.
A second handler for a topic already taken, or a second job with a taken name, is an error.

Order. Subscribers of one event run one after the other in the desk's transaction, in the order
of :data:`SUBSCRIBERS`: notifications are queued first, then the client app's live frames, then
the copies to partners, then telephony's binding of the new ticket to its call. None of them
reads what another one writes; the order decides the order of outbox rows and live frames, and is
the order the tests were written against. Handlers are keyed by topic, so their order does not
matter. Jobs each get their own loop; the outbox comes first because everything outbound waits on
it, then the intake worker that applies what senders delivered. Intake sources are keyed by name.
"""

from __future__ import annotations

from hub.desk import jobs as desk_jobs
from hub.desk.events import Subscriber, add_subscriber
from hub.desk.sla import deadlines as sla_deadlines
from hub.exchange import delivery as exchange_delivery
from hub.exchange import jobs as exchange_jobs
from hub.exchange import subscribers as exchange_subscribers
from hub.intake import IntakeSource, register_source
from hub.intake.worker import intake_job
from hub.jobs import JobFunction, add_job
from hub.live import prune_live_events, sequence_left_over
from hub.monitoring import subscribers as monitoring_subscribers
from hub.monitoring.alarm.service import AlarmEvents
from hub.monitoring.intake import MonitoringTickets
from hub.notifications import delivery as notification_delivery
from hub.notifications import subscribers as notification_subscribers
from hub.outbox.handlers import Handler, register_handler
from hub.outbox.worker import outbox_job
from hub.payments import jobs as payment_jobs
from hub.payments.intake import PaymentCallbacks
from hub.telephony import binding as telephony_binding
from hub.telephony import jobs as telephony_jobs
from hub.telephony.intake import PbxEvents
from hub.web import live as web_live

__all__ = ["INTAKE_SOURCES", "JOBS", "OUTBOX_HANDLERS", "SUBSCRIBERS", "wire"]

SUBSCRIBERS: tuple[Subscriber, ...] = (
    # TicketCreated (deadlines first, so everyone after sees them)
    sla_deadlines.on_ticket_created,
    notification_subscribers.on_ticket_created,
    monitoring_subscribers.on_ticket_created,
    telephony_binding.bind_created_ticket,
    # StatusChanged
    notification_subscribers.on_status_changed,
    exchange_subscribers.on_status,
    monitoring_subscribers.on_status_changed,
    # CommentAdded
    sla_deadlines.on_comment_added,
    notification_subscribers.on_comment_added,
    monitoring_subscribers.on_comment_added,
    exchange_subscribers.on_comment,
    # TicketUpdated
    sla_deadlines.on_ticket_updated,
    notification_subscribers.on_ticket_updated,
    exchange_subscribers.on_update,
    monitoring_subscribers.on_ticket_updated,
    # Every desk event: the web app's open lists and ticket pages reload what changed
    web_live.on_desk_event,
)

OUTBOX_HANDLERS: tuple[Handler, ...] = (
    notification_delivery.deliver_email,
    notification_delivery.deliver_sms,
    notification_delivery.deliver_telegram,
    notification_delivery.deliver_push,
    notification_delivery.deliver_webhook,
    exchange_delivery.deliver,
    payment_jobs.create_payment,
    payment_jobs.cancel_payment,
    payment_jobs.refund,
    telephony_jobs.deliver_originate,
)

# What applies each kind of inbound event the intake pipeline stored (by source name).
INTAKE_SOURCES: tuple[IntakeSource, ...] = (
    PaymentCallbacks(),
    PbxEvents(),
    MonitoringTickets(),
    AlarmEvents(),
)

JOBS: tuple[JobFunction, ...] = (
    outbox_job,
    intake_job,
    desk_jobs.desk_sweeper,
    exchange_jobs.mirror_files_job,
    exchange_jobs.release_held_job,
    payment_jobs.reconcile_job,
    telephony_jobs.sweep_stale_calls,
    sequence_left_over,
    prune_live_events,
)


def wire() -> None:
    """Register every subscriber, handler and job above (again: a no-op)."""
    for subscriber in SUBSCRIBERS:
        add_subscriber(subscriber)
    for handler in OUTBOX_HANDLERS:
        register_handler(handler)
    for source in INTAKE_SOURCES:
        register_source(source)
    for job in JOBS:
        add_job(job)
