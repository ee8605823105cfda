"""Effects only after commit (the rule every outbox wake-up, live event and stored file relies on),
also when a service uses a savepoint to try something and undo it."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from hub.db import after_commit, after_rollback


def _session() -> Session:
    session = Session(create_engine("sqlite://"))
    session.execute(text("SELECT 1"))
    return session


def test_a_released_savepoint_is_not_the_commit() -> None:
    session = _session()
    ran: list[str] = []
    after_commit(session, lambda: ran.append("outer"))
    with session.begin_nested():
        after_commit(session, lambda: ran.append("inside savepoint"))
    assert ran == [], "callbacks ran when the savepoint was released, before the real commit"
    session.commit()
    assert ran == ["outer", "inside savepoint"]


def test_a_rolled_back_savepoint_drops_only_its_own_effects() -> None:
    session = _session()
    ran: list[str] = []
    undone: list[str] = []
    after_commit(session, lambda: ran.append("kept"))
    after_rollback(session, lambda: undone.append("outer file"))
    savepoint = session.begin_nested()
    after_commit(session, lambda: ran.append("dropped"))
    after_rollback(session, lambda: undone.append("savepoint file"))
    with session.begin_nested():
        after_commit(session, lambda: ran.append("dropped too"))
    savepoint.rollback()
    assert undone == ["savepoint file"]
    session.commit()
    assert ran == ["kept"]
    assert undone == ["savepoint file"], "a committed change's file must stay"


def test_a_rollback_drops_every_effect_and_undoes_every_file() -> None:
    session = _session()
    ran: list[str] = []
    undone: list[str] = []
    after_commit(session, lambda: ran.append("never"))
    after_rollback(session, lambda: undone.append("outer"))
    session.begin_nested()
    after_rollback(session, lambda: undone.append("savepoint"))
    session.rollback()
    assert ran == []
    assert sorted(undone) == ["outer", "savepoint"]
    session.execute(text("SELECT 1"))
    session.commit()
    assert ran == []
