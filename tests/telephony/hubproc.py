"""Real hub processes for multi-process tests and the benchmark: a private PostgreSQL database,
``hub serve`` subprocesses on it with the PostgreSQL channels backend."""

from __future__ import annotations

from hub.devkit import LOCAL_SERVER, HubProcess, fresh_database, hub_processes, private_pg_url

__all__ = ["LOCAL_SERVER", "HubProcess", "fresh_database", "hub_processes", "private_pg_url"]
