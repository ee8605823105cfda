"""The `hub` command as an operator meets it (issue 12): start-up errors in one line that names
the setting and the fix, `--version`, help for every option, and the first administrator's
password from a prompt or the environment."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub import __version__
from hub.cli import build_parser
from hub.devkit import LOCAL_SERVER, PASSWORD, free_port

HUB = [sys.executable, "-m", "hub.cli"]


def _hub(
    tmp_path: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "HUB_DATA_DIR": str(tmp_path), "HUB_PASSWORD_LOG2_N": "10", **env}
    return subprocess.run(
        [*HUB, *args],
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # no controlling terminal: a prompt reads standard input
    )


def _server() -> str:
    return os.environ.get("HUB_TEST_DATABASE_URL", "").rsplit("/", 1)[0] or LOCAL_SERVER


@pytest.mark.parametrize(
    ("env", "told"),
    [
        ({"HUB_PORT": "eighty"}, "HUB_PORT must be a whole number, got 'eighty'"),
        ({"HUB_PORT": "70000"}, "HUB_PORT 70000 is not a TCP port: choose one from 1 to 65535"),
        (
            {"HUB_DATABASE_URL": "postgres://db/hub"},
            "HUB_DATABASE_URL starts with 'postgres': use postgresql+asyncpg://",
        ),
        ({"HUB_SECRET_KEY": "short"}, "HUB_SECRET_KEY is 5 characters, it must be at least 32"),
        (
            {"HUB_DATABASE_URL": f"{LOCAL_SERVER.rsplit(':', 1)[0]}:{free_port()}/hub"},
            "nothing answers at postgresql+asyncpg://postgres@127.0.0.1:",
        ),
        ({"HUB_DATABASE_URL": "MISSING"}, "HUB_DATABASE_URL names a database that does not exist"),
    ],
)
def test_start_up_errors_are_one_line_naming_the_setting(
    tmp_path: Path, env: dict[str, str], told: str
) -> None:
    """Issue 12: a bad setting stops `hub serve` with one line naming the setting and the fix,
    before anything says "listening", never a traceback."""
    if env.get("HUB_DATABASE_URL") == "MISSING":
        env = {"HUB_DATABASE_URL": f"{_server()}/no_such_database_ops"}
    served = _hub(tmp_path, "serve", "--port", str(free_port()), **env)
    assert served.returncode != 0
    assert "listening" not in served.stdout and "Traceback" not in served.stderr
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hub serve: ") and told in lines[0], served.stderr


def test_version(tmp_path: Path) -> None:
    shown = _hub(tmp_path, "--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"hub {__version__}"


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(f"{name} {option}", a) for option, a in _options(sub)]
        elif not isinstance(action, argparse._HelpAction):
            found.append((action.option_strings[0] if action.option_strings else action.dest, action))
    return found


def test_every_option_has_help() -> None:
    """Issue 12: `hub serve --help` and every other command explain each option."""
    options = _options(build_parser())
    assert {"serve --port", "serve --host", "account create --admin-password"} <= {
        name for name, _ in options
    }
    assert [name for name, action in options if not action.help] == []


def _create(tmp_path: Path, slug: str, *args: str, stdin: str | None = None, **env: str) -> str:
    created = _hub(
        tmp_path,
        "account",
        "create",
        "--name",
        slug.title(),
        "--slug",
        slug,
        "--admin-email",
        f"boss@{slug}.test",
        *args,
        stdin=stdin,
        **env,
    )
    assert created.returncode == 0, created.stderr
    assert PASSWORD not in created.stdout
    return created.stdout


async def test_account_create_takes_the_password_from_the_environment_or_a_prompt(tmp_path: Path) -> None:
    """Issue 12: the first administrator's password from HUB_ADMIN_PASSWORD or asked twice (kept
    off the command line, where other users see it); both sign in."""
    import httpx

    from hub.app import create_app, shutdown
    from hub.devkit import make_settings

    _create(tmp_path, "gamma", HUB_ADMIN_PASSWORD=PASSWORD)
    _create(tmp_path, "delta", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    mismatch = _hub(
        tmp_path,
        "account",
        "create",
        "--name",
        "E",
        "--slug",
        "eps",
        "--admin-email",
        "b@e.test",
        stdin=f"{PASSWORD}\nsomething else\n",
    )
    assert mismatch.returncode != 0 and "the two passwords differ" in mismatch.stderr

    app = create_app(
        make_settings(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", tmp_path), run_background_jobs=False
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as http:
        for slug in ("gamma", "delta"):
            body = {"account": slug, "login": f"boss@{slug}.test", "password": PASSWORD, "kind": "employee"}
            assert (await http.post("/api/auth/login", json=body)).status_code == 200, slug
        refused = {"account": "eps", "login": "b@e.test", "password": PASSWORD, "kind": "employee"}
        assert (await http.post("/api/auth/login", json=refused)).status_code == 401
    await shutdown(app)
