"""The monitoring-centre contract (MON-1): what monitoring software posts to open a service ticket.

``POST /api/monitoring/tickets`` with the account's monitoring integration key in ``X-Api-Key``
and one :class:`MonitoringTicketRequest` as JSON. An ``Idempotency-Key`` header (any string up to
200 characters, unique per request on the sender's side) makes a retried request return the
ticket the first one created instead of a second ticket.

Answers: 201 :class:`MonitoringTicketResult` (``duplicate: false``); 200 the same result with
``duplicate: true`` for a repeated idempotency key; problem JSON 404 ``object_not_found`` (no
object with that number in the account: nothing is created), 409 ``idempotency_key_reused``
(the key came with a different body), 422 ``invalid_request``, 401/403 for a missing or wrong key.

The ticket's source is ``monitoring``; the operator's name is kept on the ticket and in its history.

The JSON Schema exported from these Structs lives in ``contracts/schemas/`` (a test keeps the
file and the code equal; regenerate with ``python -m contracts.monitoring``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from contracts._schema import SCHEMA_DIR, json_schema, write_schema_files

__all__ = ["SCHEMA_DIR", "MonitoringTicketRequest", "MonitoringTicketResult", "schemas", "write_schemas"]


class MonitoringTicketRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A service ticket opened by a monitoring-centre operator for a guarded object."""

    object_number: Annotated[
        str, msgspec.Meta(min_length=1, max_length=64, description="The object's number in the account")
    ]
    operator_name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=200, description="Who at the monitoring centre opened it")
    ]
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, description="What is wrong")]
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] | None = None
    priority: Literal["low", "normal", "high", "critical"] = "normal"
    # The monitoring software's own reference (event or card number), kept in the history.
    external_ref: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class MonitoringTicketResult(msgspec.Struct):
    ticket_id: int
    number: int
    status: str
    object_number: str
    duplicate: bool = False


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema files of this contract, by file name."""
    return {
        "monitoring.ticket_request.schema.json": json_schema(MonitoringTicketRequest),
        "monitoring.ticket_result.schema.json": json_schema(MonitoringTicketResult),
    }


def write_schemas() -> None:
    write_schema_files(schemas())


if __name__ == "__main__":
    write_schemas()
