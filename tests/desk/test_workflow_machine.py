"""A hypothesis state machine drives random transitions, comments, assignments, clock jumps and
sweeper rounds through the desk's service and checks DESK-4's rules and DESK-5's clocks against
an independent model written here (not the desk's own transition table)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from hub.accounts.schemas import EmployeeCreate
from hub.accounts.service import create_account, create_employee
from hub.db import Database
from hub.desk import service
from hub.desk.actors import Actor
from hub.desk.jobs import sweep
from hub.desk.schemas import TicketCreate
from hub.errors import HubError

STATUSES = ["open", "in_progress", "pending", "resolved", "closed", "cancelled", "reopened"]
FROM_OPEN = {"in_progress", "pending", "resolved", "cancelled"}
ALLOWED = {
    "open": FROM_OPEN,
    "reopened": FROM_OPEN,
    "in_progress": {"pending", "resolved", "cancelled"},
    "pending": {"open", "in_progress", "resolved", "cancelled"},
    "resolved": {"closed", "reopened"},
    "closed": set(),
    "cancelled": set(),
}
REACTION_DUE = timedelta(hours=1)
RESOLUTION_DUE = timedelta(hours=8)
AUTO_CLOSE = timedelta(hours=72)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_counter = iter(range(1_000_000))


def expected_refusal(
    m: WorkflowMachine, to: str, client: bool, comment: str | None, until: datetime | None
) -> str | None:
    allowed = set(ALLOWED[m.status])
    if m.status == "pending" and m.previous == "reopened":
        allowed.add("reopened")
    if to not in allowed:
        return "transition_not_allowed"
    if client and not (m.status == "resolved" or (m.status == "open" and to == "cancelled")):
        return "transition_not_allowed_for_client"
    if client and to == "cancelled" and m.responsible:
        return "ticket_taken"  # DESK-11: a client cancels only a ticket nobody has taken
    if to == "closed" and not client:
        return "confirmation_required"  # an engineer's click is no confirmation (DESK-4)
    if to in ("in_progress", "resolved") and not m.responsible:
        return "responsible_required"
    if to == "pending":
        if until is None:
            return "until_required"
        if until <= m.now:
            return "until_in_past"
    if to in ("pending", "cancelled") and not comment:
        return "comment_required"
    return None


class WorkflowMachine(RuleBasedStateMachine):
    database_url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.db = Database(self.database_url)
        self.now = T0
        self.status = "open"
        self.previous: str | None = None
        self.responsible = False
        self.pending_since: datetime | None = None
        self.until: datetime | None = None
        self.pending_total = timedelta(0)
        self.reacted: datetime | None = None
        self.resolution: timedelta | None = None
        self.resolved_at: datetime | None = None
        self.needs_reply = False

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.db.dispose())
        self.loop.close()

    # --- setup ---------------------------------------------------------------------------------

    @initialize()
    def make_ticket(self) -> None:
        async def go() -> None:
            n = next(_counter)
            async with self.db.sessionmaker() as session, session.begin():
                account = await create_account(session, name=f"Machine {n}", slug=f"machine-{n}-{id(self)}")
                engineer = await create_employee(
                    session,
                    account.id,
                    EmployeeCreate(name="Eng", email=f"e{n}@m.test", role="engineer", password="x" * 10),
                    log2_n=4,
                )
                self.account_id, self.engineer_id = account.id, engineer.id
                self.actor = Actor("employee", engineer.id, "Eng")
                data = TicketCreate(
                    title="Machine ticket",
                    reaction_due_at=T0 + REACTION_DUE,
                    resolution_due_at=T0 + RESOLUTION_DUE,
                )
                ticket = await service.create_ticket(session, account.id, self.actor, data, now=T0)
                self.ticket_id = ticket.id

        self.run(go())

    # --- model transitions -----------------------------------------------------------------------

    def _enter(self, to: str) -> None:
        old = self.status
        if old == "pending":
            assert self.pending_since is not None
            self.pending_total += self.now - self.pending_since
            self.pending_since = self.until = None
            self.previous = None
        if to == "in_progress" and self.reacted is None:
            self.reacted = self.now
        if to == "resolved":
            self.resolved_at = self.now
            if self.resolution is None:
                self.resolution = self.now - T0 - self.pending_total
        self.status = to

    # --- rules -----------------------------------------------------------------------------------

    @rule(minutes=st.integers(min_value=0, max_value=24 * 60))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(assign=st.booleans())
    def assign(self, assign: bool) -> None:
        async def go() -> None:
            async with self.db.sessionmaker() as session, session.begin():
                await service.update_ticket(
                    session,
                    self.account_id,
                    self.ticket_id,
                    self.actor,
                    {"responsible_id": self.engineer_id if assign else None},
                    now=self.now,
                )

        try:
            self.run(go())
        except HubError as exc:
            if self.status in ("closed", "cancelled"):
                assert exc.code == "ticket_final"
            else:
                # DESK-4: in_progress and resolved keep their responsible employee.
                assert exc.code == "responsible_required"
                assert not assign and self.responsible and self.status in ("in_progress", "resolved")
        else:
            assert self.status not in ("closed", "cancelled")
            assert assign or not self.responsible or self.status not in ("in_progress", "resolved")
            self.responsible = assign

    @rule(
        to=st.sampled_from(STATUSES),
        # Biased towards requests that pass, so walks get deep; refusals still come often.
        client=st.sampled_from([False, False, False, True]),
        comment=st.sampled_from(["because", "because", "because", None, ""]),
        until_minutes=st.one_of(st.integers(min_value=-60, max_value=48 * 60), st.none()),
    )
    def change(self, to: str, client: bool, comment: str | None, until_minutes: int | None) -> None:
        until = None if until_minutes is None else self.now + timedelta(minutes=until_minutes)
        actor = Actor("contact", None, "Client") if client else self.actor
        expected = expected_refusal(self, to, client, comment, until)

        async def go() -> None:
            async with self.db.sessionmaker() as session, session.begin():
                await service.change_status(
                    session,
                    self.account_id,
                    self.ticket_id,
                    actor,
                    to,
                    comment=comment,
                    until=until,
                    now=self.now,
                )

        try:
            self.run(go())
        except HubError as exc:
            assert exc.code == expected, (self.status, to, exc.code, expected)
            return
        assert expected is None, (self.status, to, expected)
        previous = self.status
        self._enter(to)
        if to == "pending":
            self.previous, self.pending_since, self.until = previous, self.now, until

    @rule(public=st.booleans(), client=st.booleans())
    def comment(self, public: bool, client: bool) -> None:
        actor = Actor("contact", None, "Client") if client else self.actor

        async def go() -> None:
            async with self.db.sessionmaker() as session, session.begin():
                await service.add_comment(
                    session,
                    self.account_id,
                    self.ticket_id,
                    actor,
                    "hello",
                    public=public or client,
                    now=self.now,
                )

        try:
            self.run(go())
        except HubError as exc:
            # DESK-4: closed and cancelled are final; nobody on either side comments there.
            assert exc.code == "ticket_final" and self.status in ("closed", "cancelled")
            return
        assert self.status not in ("closed", "cancelled")
        if client:
            self.needs_reply = True
        elif public:
            self.needs_reply = False
            if self.reacted is None:
                self.reacted = self.now

    @rule()
    def sweeper_round(self) -> None:
        async def go() -> None:
            async with self.db.sessionmaker() as session, session.begin():
                await sweep(session, self.now)

        self.run(go())
        if self.status == "pending" and self.until is not None and self.until <= self.now:
            back = self.previous or "open"
            if back == "in_progress" and not self.responsible:
                back = "open"
            self._enter(back)
        if self.status == "resolved" and self.resolved_at and self.resolved_at + AUTO_CLOSE <= self.now:
            self._enter("closed")

    # --- invariants --------------------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        if not hasattr(self, "ticket_id"):
            return

        async def go() -> Any:
            async with self.db.sessionmaker() as session:
                return await service.get_ticket(session, self.account_id, self.ticket_id)

        t = self.run(go())
        assert t.status == self.status
        assert t.status_before_pending == (self.previous if self.status == "pending" else None)
        assert t.pending_seconds == int(self.pending_total.total_seconds())
        assert t.needs_reply == self.needs_reply
        # DESK-5 reaction clock: creation to first in_progress or public employee reply.
        if self.reacted is None:
            assert t.reacted_at is None and t.reaction_seconds is None
        else:
            assert t.reaction_seconds == int((self.reacted - T0).total_seconds())
            assert t.sla_reaction_breached == (self.reacted - T0 > REACTION_DUE)
        # DESK-5 resolution clock: creation to resolved, pending time excluded.
        if self.resolution is None:
            assert t.resolution_seconds is None
        else:
            assert t.resolution_seconds == int(self.resolution.total_seconds())
            assert t.sla_resolution_breached == (self.resolution > RESOLUTION_DUE)


def test_random_walks_obey_the_workflow_and_the_clocks(database_url: str) -> None:
    """DESK-4 and DESK-5: random transitions (employee and client), assignments, comments, clock
    jumps and sweeper rounds never break the transition rules, the pending return, the auto-close,
    or the SLA clocks (reaction; resolution without pending time) and their breach flags."""
    WorkflowMachine.database_url = database_url
    runner = WorkflowMachine.TestCase
    runner.settings = settings(
        max_examples=30,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    runner().runTest()


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
