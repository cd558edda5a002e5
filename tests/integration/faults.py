"""Real faults for the integration tests: short-lived worker and beat processes of a test's own (killed with
SIGKILL), a redis-server the test stops and starts, and a TCP proxy to PostgreSQL that the test cuts.

Each test gets its own queue, so the session's worker (`celery_worker_process`) never sees its jobs.
"""

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check: Callable, *, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"Not within {timeout} s: {what}")


class Fleet:
    """Worker and beat processes on a queue of their own, with short leases and sweeps; all stopped at the end."""

    def __init__(self, folder: Path, *, database_port: int | None = None, **env):
        self.folder = folder
        self.queue = f"kiwiwhale-faults-{uuid.uuid4().hex[:8]}"
        db = settings.DATABASES["default"]
        port = database_port or db["PORT"] or 5432
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{port}/{db['NAME']}",
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "CELERY_QUEUE": self.queue,
            "DB_CONN_MAX_AGE": "0",
            "JOB_LEASE_SECONDS": "5",
            "JOB_SWEEP_SECONDS": "1",
            "JOB_REQUEUE_AFTER_SECONDS": "5",
            **env,
        }
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "kiwiwhale", *args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append((process, log))
        return process

    def worker(self, name: str) -> subprocess.Popen:
        args = ["worker", "--pool=threads", "--concurrency=1", "--loglevel=info", "--without-gossip"]
        return self._start(name, [*args, "--without-mingle", "--without-heartbeat", "-n", f"{name}-{self.queue}@%h"])

    def beat(self) -> subprocess.Popen:
        return self._start("beat", ["beat", "--loglevel=info", "--schedule", str(self.folder / "beat-schedule")])

    def wait_ready(self, timeout: float = 60) -> None:
        for process, log in self.processes:
            marker = "beat: Starting" if "beat" in log.name else " ready."
            wait_until(
                lambda process=process, log=log, marker=marker: self._ready(process, log, marker),
                timeout=timeout,
                what=f"{log.name} ready",
                every=0.2,
            )

    @staticmethod
    def _ready(process: subprocess.Popen, log: Path, marker: str) -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{log.name} exited:\n{log.read_text()[-3000:]}")
        return marker in log.read_text()

    def owner(self, pid: int) -> subprocess.Popen:
        return next(process for process, _ in self.processes if process.pid == pid)

    def stop(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=5)

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for _, log in self.processes)


class RedisServer:
    """A redis-server of the test's own on a free loopback port, without persistence, stopped and started at will."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen([*args, "--dir", str(self.folder)], stdout=subprocess.DEVNULL)
        wait_until(self._answers, timeout=10, what="redis-server answers")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


class TcpProxy:
    """Forwards loopback connections to PostgreSQL; `cut()` drops every open connection (new ones still pass)."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pump(client: socket.socket, upstream: socket.socket) -> None:
        ends = {client: upstream, upstream: client}
        try:
            while True:
                readable, _, _ = select.select(list(ends), [], [], 1.0)
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        return
                    ends[end].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for end in ends:
                end.close()

    def cut(self) -> int:
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for end in pair:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
        return len(pairs)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.cut()
