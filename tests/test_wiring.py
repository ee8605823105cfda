"""Explicit wiring (hub/wiring.py): what runs is what the wiring lists, nothing registers itself
at import, nothing marked is forgotten, and every topic the hub enqueues has a handler."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import hub
from hub.desk.events import _subscribers, event_type_of
from hub.jobs import job_of, registered_jobs
from hub.notifications.schemas import CHANNELS
from hub.notifications.service import TOPIC_PREFIX
from hub.outbox.handlers import handler_for, topic_of
from hub.wiring import JOBS, OUTBOX_HANDLERS, SUBSCRIBERS, wire

HUB = Path(hub.__file__).parent
REGISTERING_CALLS = {"add_subscriber", "register_handler", "add_job"}
QUEUEING_CALLS = {"enqueue", "Outgoing"}


def _parse_hub() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), filename=str(path))) for path in sorted(HUB.rglob("*.py"))]


# Parsed once, when the tests are collected: CPython 3.11.7's ast.parse raised "AST constructor
# recursion depth mismatch" on a valid file when called after the multi-process test had run.
_PARSED = _parse_hub()


def _sources() -> list[tuple[Path, ast.Module]]:
    return _PARSED


def _hub_modules() -> Iterator[ModuleType]:
    """Every module under hub/, namespace packages too (the migrations run alembic when imported)."""
    for path in sorted(HUB.rglob("*.py")):
        name = ".".join(path.relative_to(HUB.parent).with_suffix("").parts).removesuffix(".__init__")
        if not name.startswith("hub.migrations"):
            yield importlib.import_module(name)


def _imported_names(tree: ast.Module) -> dict[str, int]:
    """Name bound by each import (anywhere in the module) -> its line."""
    bound: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                bound[alias.asname or alias.name] = node.lineno
    return bound


def _used_names(tree: ast.Module) -> set[str]:
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    # Quoted annotations ("Ticket") and __all__ entries name imports too.
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            used.update(re.findall(r"[A-Za-z_]\w*", node.value))
    return used


def test_no_module_under_hub_imports_anything_for_its_side_effect() -> None:
    """An import whose name is never used is there for what importing does (the old wiring:
    ``from hub.x import subscribers as _subscribers  # noqa: F401``). None is left."""
    offences = []
    for path, tree in _sources():
        source = path.read_text()
        if "noqa: F401" in source:
            offences.append(f"{path.relative_to(HUB.parent)}: silences F401 (an unused import)")
        used = _used_names(tree)
        for name, line in _imported_names(tree).items():
            if name not in used:
                offences.append(f"{path.relative_to(HUB.parent)}:{line}: {name} is imported and never used")
    assert offences == []


def test_only_the_wiring_registers() -> None:
    """No module registers a subscriber, handler or job itself (at import or later)."""
    offences = []
    for path, tree in _sources():
        if path == HUB / "wiring.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _called(node)
                if name in REGISTERING_CALLS:
                    offences.append(f"{path.relative_to(HUB.parent)}:{node.lineno}: {name}()")
    assert offences == []


def _called(call: ast.Call) -> str | None:
    return getattr(call.func, "id", None) or getattr(call.func, "attr", None)


def _marked(mark: Any) -> set[Any]:
    """Functions of hub/ that carry ``mark`` (defined in the module where they are found)."""
    found = set()
    for module in _hub_modules():
        for value in vars(module).values():
            if callable(value) and getattr(value, "__module__", None) == module.__name__ and mark(value):
                found.add(value)
    return found


def test_the_wiring_lists_every_subscriber_handler_and_job_once() -> None:
    """A function marked @subscriber, @outbox_handler or @periodic_job that the wiring does not
    list would never run: each one is listed, once, and nothing unmarked is."""
    assert set(SUBSCRIBERS) == _marked(event_type_of) and len(set(SUBSCRIBERS)) == len(SUBSCRIBERS)
    assert set(OUTBOX_HANDLERS) == _marked(topic_of) and len(set(OUTBOX_HANDLERS)) == len(OUTBOX_HANDLERS)
    assert set(JOBS) == _marked(job_of) and len(set(JOBS)) == len(JOBS)


def _enqueued_topics() -> tuple[set[str], set[str]]:
    """Topics passed as ``topic=`` to enqueue() or Outgoing() anywhere in hub/: exact ones, and prefixes of computed ones
    (``TOPIC_PREFIX + channel``)."""
    modules = {module.__file__: module for module in _hub_modules()}
    exact: set[str] = set()
    prefixes: set[str] = set()
    for path, tree in _sources():
        namespace = vars(modules[str(path)]) if str(path) in modules else {}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _called(node) in QUEUEING_CALLS):
                continue
            for keyword in node.keywords:
                if keyword.arg != "topic":
                    continue
                value = keyword.value
                if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):
                    left = eval(compile(ast.Expression(value.left), str(path), "eval"), dict(namespace))
                    try:
                        exact.add(left + eval(compile(ast.Expression(value.right), str(path), "eval"), {}))
                    except NameError:
                        prefixes.add(left)
                elif not (isinstance(value, ast.Name) and value.id == "topic"):  # passed through
                    exact.add(eval(compile(ast.Expression(value), str(path), "eval"), dict(namespace)))
    return exact, prefixes


def test_every_topic_the_hub_enqueues_has_a_handler() -> None:
    """A message queued for a topic nobody delivers would sit in the outbox until it dead-letters."""
    wire()
    exact, prefixes = _enqueued_topics()
    assert exact and prefixes == {TOPIC_PREFIX}
    assert [topic for topic in exact if handler_for(topic) is None] == []
    # Notifications compute their topic from the channel: every channel has its delivery.
    assert [c for c in CHANNELS if handler_for(TOPIC_PREFIX + c) is None] == []


def test_wiring_again_changes_nothing_and_keeps_the_listed_order() -> None:
    """Tests build many apps in one process; each calls wire(). Nothing is doubled, and the
    subscribers of each event run in the wiring's order."""
    wire()
    before = ({k: list(v) for k, v in _subscribers.items()}, [job.name for job in registered_jobs()])
    wire()
    after = ({k: list(v) for k, v in _subscribers.items()}, [job.name for job in registered_jobs()])
    assert before == after
    for event_type, subscribers in after[0].items():
        listed = [s for s in SUBSCRIBERS if event_type_of(s) is event_type]
        assert [s for s in subscribers if s in listed] == listed
    assert all(handler_for(topic_of(h) or "") is h for h in OUTBOX_HANDLERS)
