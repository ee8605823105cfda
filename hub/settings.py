"""Typed settings, read once from the environment (``HUB_*`` variables)."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

import msgspec

__all__ = [
    "AlarmSettings",
    "ConfigurationError",
    "DatabaseSettings",
    "ExchangeSettings",
    "FileSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "check_port",
    "get_settings",
]


class ConfigurationError(RuntimeError):
    """Raised at start-up when the environment describes an impossible configuration."""


class DatabaseSettings(msgspec.Struct, frozen=True):
    url: str
    echo: bool = False
    pool_size: int = 20  # connections per process (PostgreSQL), opened as needed and kept


class ServerSettings(msgspec.Struct, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    worker_in_process: bool = True
    sweeper_interval_seconds: float = 30.0
    max_request_bytes: int = 1024 * 1024
    # Partner hubs on loopback / private addresses are refused unless this is set (test networks).
    allow_insecure_partners: bool = False
    channels_backend: str = "memory"  # memory | postgres | redis
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Reverse proxies (CIDRs) whose X-Forwarded-For names the real client (YooKassa sender check).
    trusted_proxies: tuple[str, ...] = ()
    # /ready: not ready when a background job's round has not started or ended for this long
    # (jobs running in this process), or an outbox message has been due for this long.
    ready_job_stale_seconds: float = 300.0
    ready_outbox_stuck_seconds: float = 300.0


class FileSettings(msgspec.Struct, frozen=True):
    max_files_per_ticket: int = 15
    max_file_bytes: int = 40 * 1024 * 1024


class SecuritySettings(msgspec.Struct, frozen=True):
    secret_key: str
    access_token_seconds: int = 900
    refresh_token_seconds: int = 30 * 24 * 3600
    # scrypt cost (N = 2**log2_n); memory = 128 * r * N bytes. 2**14 * 8 * 128 = 16 MiB.
    password_log2_n: int = 14


class OutboxSettings(msgspec.Struct, frozen=True):
    max_attempts: int = 10
    # Exponential backoff with jitter between attempts: initial, then doubling, capped.
    initial_delay_seconds: float = 2.0
    max_delay_seconds: float = 600.0
    # A claimed message whose worker died is taken over after this lease; a live worker renews it
    # every third of it while it delivers (so a slow delivery is never taken over).
    lease_seconds: float = 15.0
    batch_size: int = 50
    poll_seconds: float = 1.0


class ExchangeSettings(msgspec.Struct, frozen=True):
    """Limits of the partner inbox (contracts/EXCHANGE.md): what one partner may make us hold."""

    # Messages held (waiting for an earlier seq) per connection; beyond: 429 too_many_held.
    max_held: int = 1000
    # How far past the next expected seq a message may be; beyond: 422 seq_too_far.
    max_seq_ahead: int = 1000


class AlarmSettings(msgspec.Struct, frozen=True):
    """The DC-09 alarm receiver (MON-8): ``hub alarm-receiver``, or inside ``hub serve`` when enabled."""

    enabled: bool = False  # start the receiver inside `hub serve`
    host: str = "127.0.0.1"
    tcp_port: int = 10500  # 0: no TCP listener
    udp_port: int = 10500  # 0: no UDP listener
    # The panel's timestamp may be this far behind / ahead of the receiver's clock (DC-09: -40/+20 s).
    window_past_seconds: float = 40.0
    window_future_seconds: float = 20.0
    idle_timeout_seconds: float = 60.0  # a TCP connection with no frame begun for this long is closed
    frame_timeout_seconds: float = 10.0  # a frame begun must end (CR) within this
    max_frame_bytes: int = 1024  # longer: the connection is closed
    max_connections: int = 5000
    directory_seconds: float = 5.0  # how long a looked-up account number is trusted


class Settings(msgspec.Struct, frozen=True):
    data_dir: Path
    database: DatabaseSettings
    server: ServerSettings
    files: FileSettings
    security: SecuritySettings
    outbox: OutboxSettings = msgspec.field(default_factory=OutboxSettings)
    exchange: ExchangeSettings = msgspec.field(default_factory=ExchangeSettings)
    alarm: AlarmSettings = msgspec.field(default_factory=AlarmSettings)

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"HUB_{name}", default)


def _bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"HUB_{name} must be true or false, got {raw!r}: set it to true or false")


def _int(name: str, default: int) -> int:
    raw = _env(name)
    try:
        return default if raw is None else int(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"HUB_{name} must be a whole number, got {raw!r}: correct it or unset it"
        ) from exc


def _float(name: str, default: float) -> float:
    raw = _env(name)
    try:
        return default if raw is None else float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"HUB_{name} must be a number, got {raw!r}: correct it or unset it") from exc


MIN_SECRET_KEY = 32


def check_port(port: int, setting: str) -> int:
    """A TCP port the server can listen on (0: any free one), or a ConfigurationError naming ``setting``."""
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"{setting} {port} is not a TCP port: choose one from 1 to 65535")
    return port


def _secret_key(data_dir: Path) -> str:
    """The signing secret: from the environment, else one generated once and kept in the data dir."""
    configured = _env("SECRET_KEY")
    if configured:
        if len(configured) < MIN_SECRET_KEY:
            raise ConfigurationError(
                f"HUB_SECRET_KEY is {len(configured)} characters, it must be at least {MIN_SECRET_KEY}: "
                "set a longer one (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
                "or unset it to have one generated into HUB_DATA_DIR"
            )
        return configured
    key_file = data_dir / "secret.key"
    if key_file.exists():
        return key_file.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def load_settings() -> Settings:
    data_dir = Path(_env("DATA_DIR", "./data") or "./data").resolve()
    database_url = _env("DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'hub.db'}"
    if not database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        scheme = database_url.split("://", 1)[0] if "://" in database_url else database_url[:20]
        raise ConfigurationError(
            f"HUB_DATABASE_URL starts with {scheme!r}: use postgresql+asyncpg://user@host:5432/db "
            "or sqlite+aiosqlite:///path/hub.db"
        )
    host = _env("HOST", "127.0.0.1") or "127.0.0.1"
    port = check_port(_int("PORT", 8000), "HUB_PORT")
    channels_backend = _env("CHANNELS_BACKEND") or (
        "postgres" if database_url.startswith("postgresql") else "memory"
    )
    if channels_backend not in {"memory", "postgres", "redis"}:
        raise ConfigurationError(
            f"HUB_CHANNELS_BACKEND is {channels_backend!r}: set it to memory, postgres or redis"
        )
    return Settings(
        data_dir=data_dir,
        database=DatabaseSettings(url=database_url, echo=_bool("DATABASE_ECHO", False)),
        server=ServerSettings(
            host=host,
            port=port,
            public_url=(_env("PUBLIC_URL") or f"http://{host}:{port}").rstrip("/"),
            worker_in_process=_bool("WORKER_IN_PROCESS", True),
            sweeper_interval_seconds=_float("SWEEPER_INTERVAL_SECONDS", 30.0),
            max_request_bytes=_int("MAX_REQUEST_BYTES", 1024 * 1024),
            allow_insecure_partners=_bool("ALLOW_INSECURE_PARTNERS", False),
            channels_backend=channels_backend,
            redis_url=_env("REDIS_URL") or "redis://127.0.0.1:6379/0",
            ready_job_stale_seconds=_float("READY_JOB_STALE_SECONDS", 300.0),
            ready_outbox_stuck_seconds=_float("READY_OUTBOX_STUCK_SECONDS", 300.0),
            trusted_proxies=tuple(p.strip() for p in (_env("TRUSTED_PROXIES") or "").split(",") if p.strip()),
        ),
        files=FileSettings(
            max_files_per_ticket=_int("MAX_FILES_PER_TICKET", 15),
            max_file_bytes=_int("MAX_FILE_BYTES", 40 * 1024 * 1024),
        ),
        security=SecuritySettings(
            secret_key=_secret_key(data_dir),
            access_token_seconds=_int("ACCESS_TOKEN_SECONDS", 900),
            refresh_token_seconds=_int("REFRESH_TOKEN_SECONDS", 30 * 24 * 3600),
            password_log2_n=_int("PASSWORD_LOG2_N", 14),
        ),
        outbox=OutboxSettings(
            max_attempts=_int("OUTBOX_MAX_ATTEMPTS", 10),
            initial_delay_seconds=_float("OUTBOX_INITIAL_DELAY_SECONDS", 2.0),
            max_delay_seconds=_float("OUTBOX_MAX_DELAY_SECONDS", 600.0),
            lease_seconds=_float("OUTBOX_LEASE_SECONDS", 15.0),
            batch_size=_int("OUTBOX_BATCH_SIZE", 50),
            poll_seconds=_float("OUTBOX_POLL_SECONDS", 1.0),
        ),
        exchange=ExchangeSettings(
            max_held=_int("EXCHANGE_MAX_HELD", 1000),
            max_seq_ahead=_int("EXCHANGE_MAX_SEQ_AHEAD", 1000),
        ),
        alarm=_alarm_settings(),
    )


def _alarm_settings() -> AlarmSettings:
    return AlarmSettings(
        enabled=_bool("ALARM_ENABLED", False),
        host=_env("ALARM_HOST") or "127.0.0.1",
        tcp_port=_int("ALARM_TCP_PORT", 10500),
        udp_port=_int("ALARM_UDP_PORT", 10500),
        window_past_seconds=_float("ALARM_WINDOW_PAST_SECONDS", 40.0),
        window_future_seconds=_float("ALARM_WINDOW_FUTURE_SECONDS", 20.0),
        idle_timeout_seconds=_float("ALARM_IDLE_TIMEOUT_SECONDS", 60.0),
        frame_timeout_seconds=_float("ALARM_FRAME_TIMEOUT_SECONDS", 10.0),
        max_frame_bytes=_int("ALARM_MAX_FRAME_BYTES", 1024),
        max_connections=_int("ALARM_MAX_CONNECTIONS", 5000),
        directory_seconds=_float("ALARM_DIRECTORY_SECONDS", 5.0),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this process, read from the environment on first use."""
    return load_settings()
