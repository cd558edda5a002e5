"""The ASGI application that scripts/web serves: /mcp goes to the MCP server, a request to /api/ that carries an
`Authorization` header to Django's API handler, everything else to Django with the site's middlewares."""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import ThreadSensitiveContext

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiwiwhale.settings")
django.setup(set_prefix=False)  # as get_asgi_application() does, before the handlers below load their middlewares

from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402


class RequestThreads:
    """One-thread executors kept for the requests' sync code, each lent to one request at a time. The event loop is
    the only caller, so the free list needs no lock; a request that arrives when all are lent gets a new one, and at
    most `keep` idle ones are kept."""

    def __init__(self, keep: int = 32):
        self.keep = keep
        self.free: list[ThreadPoolExecutor] = []

    def lend(self) -> ThreadPoolExecutor:
        return self.free.pop() if self.free else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        # A view still running after its client left (Django cancels the request's task, not its thread) only
        # makes the next request on this thread wait its turn.
        if len(self.free) < self.keep:
            self.free.append(executor)
        else:
            executor.shutdown(wait=False)


class KeptThreadsHandler(ASGIHandler):
    """Django's ASGI handler with its requests' sync code on kept threads (RequestThreads). Django's own starts a
    one-thread executor per request and asgiref joins it from one more thread at the end: 1.35 ms of CPU per request
    here against 0.23 to 0.46 ms on a kept one, and every thread-local (the database connection's wrapper, Django's
    cache objects) built again. A request's sync calls still all run on one thread, as Django needs."""

    threads = RequestThreads()  # one per process, shared by the site's handler and the API's

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.threads.lend()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.threads.give_back(executor)


class ApiHandler(KeptThreadsHandler):
    """Django with settings.API_MIDDLEWARE: an API key's request needs no session, CSRF token, messages, allauth
    state or referral cookie (DRF authenticates it and answers every refusal), and its middlewares all run inline,
    so it goes from the event loop to its view with no thread hop in between. Same URLs, views and error pages."""

    def load_middleware(self, is_async=False):
        site = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE  # read only here, once, before the first request
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = site


class LazyMcp:
    """The MCP server, built at the first /mcp request: the SDK and its web stack (pydantic, starlette, anyio) hold
    ~27 MiB that a web process serving no MCP client never needs. Its lifespan (the session manager's task group)
    runs in a task of its own from then until the server's shutdown, as a task group must enter and exit in one
    task."""

    def __init__(self):
        self.app = None
        self._building = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task = None

    async def __call__(self, scope, receive, send):
        if self.app is None:
            async with self._building:
                if self.app is None:
                    await self._start()
        await self.app(scope, receive, send)

    async def _start(self):
        from apps.mcp_server.server import mcp_application

        app = mcp_application()
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(app, ready))
        await ready.wait()
        if self._task.done():
            self._task.result()  # the lifespan failed to start: raise its error in this request
        self.app = app

    async def _run(self, app, ready):
        starlette_app = app.app  # inside BearerKeyRequired
        try:
            async with starlette_app.router.lifespan_context(starlette_app):
                ready.set()
                await self._stop.wait()
        finally:
            ready.set()

    async def shutdown(self):
        self._stop.set()
        if self._task is not None:
            await self._task


async def lifespan(receive, send):
    """The ASGI lifespan: nothing to start; at shutdown, the MCP server's sessions end if it was started."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await mcp_app.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


django_application = KeptThreadsHandler()
api_application = ApiHandler()
mcp_app = LazyMcp()
MCP_PATH = "/mcp"


def _is_api_call(scope) -> bool:
    """A request to /api/ with an Authorization header: DRF authenticates it by its key or refuses it (401), and
    never falls back to the session (apps/accounts/authentication.py), which this handler does not load."""
    return scope["path"].startswith("/api/") and any(name == b"authorization" for name, _ in scope["headers"])


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path = scope.get("path", "")
    if path == MCP_PATH or path.startswith(MCP_PATH + "/"):
        await mcp_app(scope, receive, send)
        return
    if scope["type"] == "http" and _is_api_call(scope):
        await api_application(scope, receive, send)
        return
    await django_application(scope, receive, send)
