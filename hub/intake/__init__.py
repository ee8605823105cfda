"""One intake pipeline for every sender (payment providers, PBXs, monitoring software).

verify in the request (cheap) -> :func:`accept` stores the raw event with its sender's dedupe key
in one ``INSERT ... ON CONFLICT DO NOTHING`` -> the request answers in the sender's own
"received" form -> the worker (:mod:`hub.intake.worker`) applies it through the source registered
for it (:func:`register_source`). :func:`reject` records a refusal at the door the same way for
every source.
"""

from hub.intake.service import INTAKE_JOB, Accepted, Received, accept, reject, store, store_many
from hub.intake.sources import Applied, EventView, IntakeSource, TransientApplyError, register_source

__all__ = [
    "INTAKE_JOB",
    "Accepted",
    "Applied",
    "EventView",
    "IntakeSource",
    "Received",
    "TransientApplyError",
    "accept",
    "register_source",
    "reject",
    "store",
    "store_many",
]
