"""An agent on the live server, the `kiwiwhale` command of this venv, and a proxy that loses answers."""

import asyncio
import concurrent.futures
import contextlib
import socket
import sys
import threading
from pathlib import Path

import pytest

from apps.accounts.services import api_key_create
from tests.conftest import make_user

KIWIWHALE = Path(sys.executable).parent / "kiwiwhale"  # the console script `pip install clients/python` made


def run_async(coroutine_function):
    """`asyncio.run` in a thread of its own: the session's Playwright (browser tests) keeps an event loop running
    in the main thread, where `asyncio.run` refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine_function()).result()


@pytest.fixture(autouse=True)
def _no_local_config(monkeypatch, tmp_path):
    """The client reads KIWIWHALE_* and ~/.config/kiwiwhale/: a developer's own must not leak into the tests."""
    for name in ("KIWIWHALE_BASE_URL", "KIWIWHALE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))


@pytest.fixture
def agent(web_server, celery_worker_process, catalog):
    """An agent account with 5 credits and its key, as the live server sees them (transactional_db)."""
    user = make_user("client-agent", credits="5", account_type="agent")
    _, key = api_key_create(user=user, name="client")
    user.raw_key = key
    return user


class AnswerDroppingProxy:
    """A TCP proxy in front of the web server that passes requests through but, on the first `drop` connections,
    closes the connection as the server's answer starts to arrive: the server did the work, the client never
    hears of it (a lost answer, as on a flaky network)."""

    def __init__(self, target: str, *, drop: int):
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.to_drop = drop
        self.dropped = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                drop = self.dropped < self.to_drop
                if drop:
                    self.dropped += 1
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, drop), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, drop: bool) -> None:
        try:
            while data := source.recv(65536):
                if drop:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def lossy_proxy(web_server):
    proxies = []

    def start(*, drop: int) -> AnswerDroppingProxy:
        proxies.append(AnswerDroppingProxy(web_server, drop=drop))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()
