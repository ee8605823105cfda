"""Shared pieces for the benchmarks' floors (no dependency on ``tests/``).

* a raw keep-alive HTTP/1.1 client (:class:`HttpPool`): httpx tops out near 300 requests/s, this
  reaches the bare endpoint's full rate;
* load shapes: :func:`closed_loop` (N senders as fast as they can) and :func:`open_loop` (a fixed
  rate, each request on schedule whatever the others do; latency counted from its scheduled start);
* the bare endpoint (:data:`bare_app`, a Litestar POST that reads the body and answers) and a raw
  asyncio HTTP server (the generator's own ceiling), each started in its own process;
* percentiles, peak RSS and CPU time of a process.

    python -m bench._floors raw-server PORT     # the raw server, as :func:`start_raw_server` runs it
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, post

__all__ = [
    "HttpPool",
    "LoopRun",
    "RateRun",
    "bare_app",
    "ceiling_and_bare",
    "closed_loop",
    "cpu_seconds",
    "encode_headers",
    "fmt_ms",
    "http_phases",
    "load_average",
    "open_loop",
    "pct",
    "peak_rss_mb",
    "print_aims",
    "print_ceiling_and_bare",
    "profile_start",
    "profile_stop",
    "profiled",
    "r",
    "ratio",
    "scratch_tables",
    "self_cpu_seconds",
    "self_peak_rss_mb",
    "start_bare",
    "start_raw_server",
    "stop_process",
    "store_and_lean",
    "tree_cpu_seconds",
    "tree_peak_rss_mb",
    "wait_port",
]


# --- the bare endpoint ------------------------------------------------------------------------


@post("/callback", status_code=200, exclude_from_auth=True, request_max_body_size=None)
async def bare_callback(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The baseline: a bare Litestar endpoint that reads the same body and answers."""
    await request.body()
    return {"received": True}


bare_app = Litestar([bare_callback])


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def start_bare(port: int) -> subprocess.Popen[bytes]:
    """``bare_app`` under uvicorn (its defaults: uvloop and httptools when installed), one process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench._floors:bare_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=_clean_env(),
        cwd=Path(__file__).resolve().parent.parent,
    )


def start_raw_server(port: int) -> subprocess.Popen[bytes]:
    """A raw asyncio (uvloop) HTTP/1.1 server that answers every POST at once: no framework, so
    what a generator reaches against it is the generator's own ceiling."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench._floors", "raw-server", str(port)],
        env=_clean_env(),
        cwd=Path(__file__).resolve().parent.parent,
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise TimeoutError(f"nothing listens on port {port}")


_RAW_ANSWER = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n{"received":true}'
)


class _RawHttp(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(_RAW_ANSWER)


async def _raw_server(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_RawHttp, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# --- the client -------------------------------------------------------------------------------


class _Conn:
    """One HTTP/1.1 keep-alive connection, one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: bytes) -> int:
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                try:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                except OSError:
                    return 599
            assert self.reader is not None and self.writer is not None
            self.writer.write(
                b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n%s"
                % (path.encode(), self.host.encode(), len(body), headers, body)
            )
            try:
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionResetError("closed by the server")
                length = 0
                while (line := await self.reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                if length:
                    await self.reader.readexactly(length)
                return int(status_line.split()[1])
            except (ConnectionError, IndexError, ValueError, asyncio.IncompleteReadError):
                self.close()
                if fresh or attempt:  # a kept-alive connection the server closed: once more
                    return 599
        return 599

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def encode_headers(headers: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()


class HttpPool:
    """Keep-alive connections to one server, opened as concurrency needs them.

    ``post`` takes the headers already encoded (:func:`encode_headers`): the generator does as
    little per request as it can."""

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.idle: list[_Conn] = []

    async def post(self, path: str, body: bytes, headers: bytes) -> int:
        conn = self.idle.pop() if self.idle else _Conn(self.host, self.port)
        try:
            return await conn.post(path, body, headers)
        finally:
            self.idle.append(conn)

    def close(self) -> None:
        """Close every connection (between phases: the server may close idle ones meanwhile)."""
        for conn in self.idle:
            conn.close()
        self.idle.clear()


# --- load shapes ------------------------------------------------------------------------------


@dataclass
class LoopRun:
    started: float  # perf_counter of the first request
    elapsed: float
    ok: int = 0
    failed: int = 0

    @property
    def count(self) -> int:
        return self.ok + self.failed

    @property
    def per_s(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0


async def closed_loop(
    call: Callable[[int], Awaitable[bool]], limit: int, duration: float, concurrency: int
) -> LoopRun:
    """``concurrency`` senders calling ``call(i)`` for i = 0, 1, ... (each i once) as fast as they
    can, for ``duration`` seconds or until ``limit`` calls. ``call`` answers success."""
    counter = iter(range(limit))
    run = LoopRun(time.perf_counter(), 0.0)
    deadline = run.started + duration

    async def sender() -> None:
        while time.perf_counter() < deadline:
            i = next(counter, None)
            if i is None:
                return
            if await call(i):
                run.ok += 1
            else:
                run.failed += 1

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    run.elapsed = time.perf_counter() - run.started
    return run


@dataclass
class RateRun:
    started: float
    elapsed: float
    latencies: list[float]  # ms, from each request's scheduled start
    failed: int
    max_late_ms: float  # how far behind schedule the generator started a request

    @property
    def per_s(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


async def open_loop(call: Callable[[int], Awaitable[bool]], count: int, rate: float) -> RateRun:
    """Open loop: request i starts at ``i / rate`` s whatever the others do; its latency counts
    from that scheduled moment (a generator running late shows, it is not hidden)."""
    latencies: list[float] = []
    failed = 0
    late = 0.0
    start = time.perf_counter()

    async def one(i: int, scheduled: float) -> None:
        nonlocal failed
        ok = await call(i)
        latencies.append((time.perf_counter() - scheduled) * 1000)
        if not ok:
            failed += 1

    tasks = []
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return RateRun(start, time.perf_counter() - start, latencies, failed, late * 1000)


# --- figures ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def fmt_ms(values: list[float]) -> str:
    mean = statistics.fmean(values) if values else float("nan")
    return (
        f"p50 {pct(values, 0.5):7.2f} ms  p99 {pct(values, 0.99):7.2f} ms  "
        f"mean {mean:7.2f} ms  n={len(values)}"
    )


def _status(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/status").read_text()
    return ""


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process, in MiB (nan when it is gone)."""
    for line in _status(pid).splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process has used so far (nan when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``hub serve --workers N``: the supervisor and its workers)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children") if Path(f"/proc/{pid}").exists() else ():
        with contextlib.suppress(OSError, ValueError):
            for child in task.read_text().split():
                pids += _tree(int(child))
    return pids


def tree_peak_rss_mb(pid: int) -> float:
    """The sum of VmHWM over a process and its descendants, in MiB."""
    return sum(v for v in (peak_rss_mb(p) for p in _tree(pid)) if v == v)


def tree_cpu_seconds(pid: int) -> float:
    return sum(v for v in (cpu_seconds(p) for p in _tree(pid)) if v == v)


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def self_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def profile_start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the hub's active threads (``--profile``), stopped by :func:`profile_stop`."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("(--profile: py-spy not found)")
        return None
    command = [spy, "record", "--pid", str(pid), "--rate", "200", "--duration", str(int(seconds) + 1)]
    command += ["--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def profile_stop(spy: subprocess.Popen[bytes], out: Path, top: int = 14) -> list[str]:
    """Stop py-spy and summarise its collapsed stacks: the hub's functions by inclusive share of
    the samples, and the leaves (where the CPU was) by self share."""
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
    if not out.exists():
        return ["(no profile written)"]
    inclusive: dict[str, int] = {}
    leaves: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for frame in set(frames):
            if "hub/" in frame or "(hub" in frame:
                inclusive[frame] = inclusive.get(frame, 0) + n
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + n
    if not total:
        return ["(no samples)"]
    lines = [f"{total} samples of the hub's active threads; inclusive (hub code):"]
    lines += [
        f"  {100 * n / total:5.1f}%  {f}" for f, n in sorted(inclusive.items(), key=lambda x: -x[1])[:top]
    ]
    lines.append("self (leaf frames):")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in sorted(leaves.items(), key=lambda x: -x[1])[:top]]
    return lines


@contextlib.contextmanager
def profiled(pid: int, seconds: float, enabled: bool) -> Iterator[list[str]]:
    """``--profile``: py-spy on ``pid`` while the block runs (at most ``seconds``); the yielded
    list receives the summary (:func:`profile_stop`) when the block ends."""
    lines: list[str] = []
    if not enabled:
        yield lines
        return
    out = Path(tempfile.mkdtemp(prefix="hub-bench-profile-")) / "profile.txt"
    spy = profile_start(pid, seconds, out)
    try:
        yield lines
    finally:
        if spy is not None:
            lines += profile_stop(spy, out)


def r(value: float, digits: int = 2) -> float:
    return round(value, digits)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def load_average() -> list[float]:
    return [r(x) for x in os.getloadavg()]


def print_aims(aims: dict[str, tuple[str, bool]]) -> dict[str, bool]:
    """Print each aim of the issue as met / NOT met; answer {key: met} for the JSON line."""
    print("aims: " + "; ".join(f"{label}: {'met' if met else 'NOT met'}" for label, met in aims.values()))
    return {key: met for key, (_label, met) in aims.items()}


async def http_phases(
    base: str,
    path: str,
    items: list[tuple[bytes, bytes]],
    *,
    concurrency: int,
    duration: float,
    pid: int,
    rate: float | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """Closed loop with ``concurrency`` senders for ``duration`` s (after 1 s of warm-up), then,
    with ``rate``, the open loop at ``rate``/s; ``items`` are (body, encoded header lines) posted
    round-robin to ``path``. Figures: per_s, failed, the bench's and the server's CPU share (the
    server's process tree), latencies at ``rate``, peak RSS of the server's tree; with ``profile``,
    py-spy's summary of the server process during the closed loop."""
    http = HttpPool(base)

    async def call(i: int) -> bool:
        body, headers = items[i % len(items)]
        return await http.post(path, body, headers) < 300

    try:
        warm = await closed_loop(call, 10**9, 1.0, concurrency)
        cpu0, server0 = self_cpu_seconds(), tree_cpu_seconds(pid)
        with profiled(pid, duration + 5, profile) as profile_lines:
            run = await closed_loop(call, 10**9, duration, concurrency)
        figures: dict[str, Any] = {
            "profile": profile_lines,
            "ok_total": warm.ok + run.ok,  # every success, warm-up included
            "per_s": run.per_s,
            "failed": run.failed,
            "bench_cpu_pct": 100 * (self_cpu_seconds() - cpu0) / run.elapsed,
            "server_cpu_pct": 100 * (tree_cpu_seconds(pid) - server0) / run.elapsed,
        }
        if rate:
            http.close()
            timed = await open_loop(call, max(1, int(rate * duration)), rate)
            figures["ok_total"] += len(timed.latencies) - timed.failed
            figures |= {
                "latencies": timed.latencies,
                "rate_failed": timed.failed,
                "late_ms": timed.max_late_ms,
            }
        figures["rss_mb"] = tree_peak_rss_mb(pid)
    finally:
        http.close()
    return figures


async def ceiling_and_bare(
    items: list[tuple[bytes, bytes]], *, concurrency: int, duration: float, rate: float | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The generator against the raw asyncio server (its ceiling: no framework), then against the
    bare Litestar endpoint (``/callback``, its own uvicorn process), the same ``items`` posted."""
    found: list[dict[str, Any]] = []
    for start, timed_rate in ((start_raw_server, None), (start_bare, rate)):
        port = _free_port()
        process = start(port)
        try:
            await wait_port(port)
            found.append(
                await http_phases(
                    f"http://127.0.0.1:{port}",
                    "/callback",
                    items,
                    concurrency=concurrency,
                    duration=duration,
                    pid=process.pid,
                    rate=timed_rate,
                )
            )
        finally:
            stop_process(process)
    return found[0], found[1]


async def store_and_lean(
    store: Callable[[int, bool], Awaitable[bool]], *, concurrency: int, duration: float
) -> dict[str, Any]:
    """The two floors of a bench, each after 1 s of warm-up: ``store(i, False)`` (store and
    acknowledge) then ``store(i, True)`` (lean apply), ``concurrency`` tasks for ``duration`` s.
    Every call gets an ``i`` of its own across the four runs (keys made from it never collide)."""
    figures: dict[str, Any] = {}
    for name, lean in (("store", False), ("lean", True)):
        base = 2 * 10**7 * lean

        async def warm(i: int, base: int = base, lean: bool = lean) -> bool:
            return await store(base + i, lean)

        async def timed(i: int, base: int = base, lean: bool = lean) -> bool:
            return await store(base + 10**7 + i, lean)

        await closed_loop(warm, 10**7, 1.0, concurrency)
        run = await closed_loop(timed, 10**7, duration, concurrency)
        figures[f"{name}_per_s"], figures[f"{name}_n"] = run.per_s, run.count
    return figures


def print_ceiling_and_bare(ceiling: dict[str, Any], bare: dict[str, Any], concurrency: int) -> None:
    print(
        f"generator ceiling (raw asyncio server, {concurrency} senders): {ceiling['per_s']:7.0f} req/s  "
        f"(bench CPU {ceiling['bench_cpu_pct']:.0f}%, server CPU {ceiling['server_cpu_pct']:.0f}%)"
    )
    print(
        f"bare Litestar endpoint (uvicorn, 1 process):   {bare['per_s']:7.0f} req/s  "
        f"(server CPU {bare['server_cpu_pct']:.0f}%; generator at "
        f"{100 * ratio(bare['per_s'], ceiling['per_s']):.0f}% of its ceiling); failed "
        f"{bare['failed'] + bare.get('rate_failed', 0)}; peak RSS {bare['rss_mb']:.0f} MB"
    )
    if "latencies" in bare:
        print(f"    at {len(bare['latencies'])} timed requests: {fmt_ms(bare['latencies'])}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def scratch_tables(dsn: str, tables: dict[str, str], copy_rows: tuple[str, ...] = ()) -> Any:
    """Scratch copies (columns, defaults, indexes; no foreign keys) of the hub's tables, for the
    floors: ``{scratch: original}``; the rows of the scratch tables named in ``copy_rows`` are
    copied too. Dropped on the way out."""
    import asyncpg

    names = ", ".join(tables)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {names}")
        for scratch, original in tables.items():
            await conn.execute(f"CREATE TABLE {scratch} (LIKE {original} INCLUDING ALL)")
            if scratch in copy_rows:
                await conn.execute(f"INSERT INTO {scratch} SELECT * FROM {original}; ANALYZE {scratch}")
        yield
    finally:
        with contextlib.suppress(Exception):
            await conn.execute(f"DROP TABLE IF EXISTS {names}")
        await conn.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["raw-server"]:
        import uvloop

        uvloop.run(_raw_server(int(sys.argv[2])))
    else:
        sys.exit("usage: python -m bench._floors raw-server PORT")
