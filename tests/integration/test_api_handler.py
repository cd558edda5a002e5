"""The API's own handler (kiwiwhale/asgi.py): a request to /api/ with an Authorization header goes to Django with
API_MIDDLEWARE, each running inline on the event loop; everything else to the site's chain. On the real server."""

import asyncio
import threading

import httpx
import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory

from apps.generations.models import Job
from kiwiwhale.lib.middleware import InlineMiddlewareMixin
from tests.conftest import make_user

CHEAP = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}


def test_the_api_handler_runs_only_inline_middlewares_and_the_site_keeps_its_own():
    from kiwiwhale.asgi import api_application, django_application

    assert asyncio.iscoroutinefunction(api_application._middleware_chain)  # no adapter: the chain is async
    chain = _chain(api_application)
    assert [f"{m.__module__}.{m.__qualname__}" for m in chain] == settings.API_MIDDLEWARE
    assert all(issubclass(m, InlineMiddlewareMixin) for m in chain)
    # The API's chain keeps the site's order (its SecurityMiddleware is Django's, made inline); the site's keeps
    # the session and CSRF.
    api_names = [m.rsplit(".", 1)[1] for m in settings.API_MIDDLEWARE]
    assert [m.rsplit(".", 1)[1] for m in settings.MIDDLEWARE if m.rsplit(".", 1)[1] in api_names] == api_names
    site = {f"{m.__module__}.{m.__qualname__}" for m in _chain(django_application)}
    assert {"django.contrib.sessions.middleware.SessionMiddleware", "django.middleware.csrf.CsrfViewMiddleware"} <= site


def _chain(handler) -> list[type]:
    """The classes of a handler's middlewares, outermost first (function middlewares end the walk)."""
    found, current = [], handler._middleware_chain
    while True:
        current = getattr(current, "__wrapped__", current)  # convert_exception_to_response's wrapper
        current = getattr(current, "func", current)  # asgiref's adapter around a sync part of the chain
        if not hasattr(current, "get_response"):
            return found
        found.append(type(current))
        current = current.get_response


def test_an_inline_middleware_runs_its_hooks_on_the_event_loop_in_an_async_chain():
    seen = {}

    class Probe(InlineMiddlewareMixin):
        def process_request(self, request):
            seen["request"] = threading.get_ident()

        def process_response(self, request, response):
            seen["response"] = threading.get_ident()
            return response

    async def view(request):
        seen["view"] = threading.get_ident()
        return HttpResponse("ok")

    async def run():
        seen["loop"] = threading.get_ident()
        return await Probe(view)(RequestFactory().get("/"))

    assert asyncio.run(run()).content == b"ok"
    assert seen["request"] == seen["view"] == seen["response"] == seen["loop"]
    # And in a sync chain, the same hooks run as Django's MiddlewareMixin runs them.
    seen.clear()
    assert Probe(lambda request: HttpResponse("sync"))(RequestFactory().get("/")).content == b"sync"
    assert set(seen) == {"request", "response"}


@pytest.mark.django_db(transaction=True)
def test_a_bearer_call_gets_the_contract_without_the_sites_cookies_or_csrf(web_server, catalog):
    from apps.accounts.services import api_key_create

    user = make_user("handler", credits="1")
    _, key = api_key_create(user=user, name="handler")
    bearer = {"Authorization": f"Bearer {key}", "X-Request-ID": "req-handler-1"}
    with httpx.Client(base_url=web_server, timeout=30) as client:
        # A POST with no CSRF token and no session: the key is the credential.
        submitted = client.post("/api/v1/generate.php", json=CHEAP, headers=bearer)
        assert submitted.status_code == 202, submitted.text
        assert submitted.headers["X-Request-ID"] == "req-handler-1"
        assert submitted.headers["X-Content-Type-Options"] == "nosniff"  # Django's security headers, inline
        assert "set-cookie" not in submitted.headers and "content-security-policy" not in submitted.headers
        job_id = submitted.json()["job_id"]
        assert Job.objects.get(pk=job_id).user == user
        polled = client.get(f"/api/v1/jobs/{job_id}", headers=bearer)
        assert polled.status_code == 200 and polled.json()["job_id"] == job_id

        # Every refusal in the contract's shape, from this handler too.
        bad = client.get("/api/v1/credits.php", headers={"Authorization": "Bearer kw_not-a-key"})
        assert bad.status_code == 401 and bad.json()["success"] is False
        assert bad.headers["WWW-Authenticate"] == 'Bearer realm="api"'
        malformed = client.get("/api/v1/credits.php", headers={"Authorization": "Basic eDp5"})
        assert malformed.status_code == 401 and malformed.json()["success"] is False
        nul = client.get("/api/v1/jobs.php", params={"job_id": "job_\x00x"}, headers=bearer)
        assert nul.status_code == 400 and nul.json()["error"] == "invalid_request"
        unknown = client.get("/api/v1/no-such-endpoint.php", headers=bearer)
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"

        # Without the header, the site's chain answers (its CSP on every response), with the same contract.
        anonymous = client.get("/api/v1/credits.php")
        assert anonymous.status_code in (401, 403) and anonymous.json()["success"] is False
        assert "content-security-policy" in anonymous.headers


def test_every_thread_reads_the_cache_through_one_redis_client_per_process():
    """Django keeps a cache object per thread and per async context (each ASGI request has both) and would build
    a redis.Redis, with its table of response callbacks, for every call: SharedRedisCache keeps one."""
    from django.core.cache import caches

    from kiwiwhale.lib.redis_pool import redis_shared

    clients = []

    def read():
        cache = caches["default"]  # a new cache object in this thread, as in a request's own thread
        cache.get("kw-probe")
        clients.append((cache, cache._cache.get_client(), cache._cache.get_client(write=True)))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(cache) for cache, _, _ in clients}) == 4
    assert len({id(client) for _, client, _ in clients}) == 1
    assert len({id(client.connection_pool) for _, client, _ in clients}) == 1
    assert redis_shared() is redis_shared()


@pytest.mark.django_db(transaction=True)
def test_the_server_reuses_its_redis_connections_across_requests(web_server, catalog):
    """Each poll reads the key and the job's answer from Redis; a hundred polls open no connection per poll."""
    import redis

    from apps.accounts.services import api_key_create

    user = make_user("redis-reuse", credits="1")
    _, key = api_key_create(user=user, name="reuse")
    bearer = {"Authorization": f"Bearer {key}"}
    counter = redis.Redis.from_url(settings.REDIS_URL)
    with httpx.Client(base_url=web_server, timeout=30, headers=bearer) as client:
        job_id = client.post("/api/v1/generate.php", json=CHEAP).json()["job_id"]
        for _ in range(10):  # warm: each web process opens the connections it keeps
            assert client.get("/api/v1/jobs.php", params={"job_id": job_id}).status_code == 200
        before = counter.info("stats")["total_connections_received"]
        for _ in range(100):
            assert client.get("/api/v1/jobs.php", params={"job_id": job_id}).status_code == 200
        opened = counter.info("stats")["total_connections_received"] - before
    # Other processes of the suite may connect meanwhile; a connection per request would be 100 or more.
    assert opened < 20, opened


@pytest.mark.django_db(transaction=True)
def test_requests_run_their_sync_code_on_kept_threads_one_request_per_thread_at_a_time():
    """Django's handler starts a thread per request and joins it from another; ours lends kept ones
    (kiwiwhale/asgi.py, RequestThreads), so a thread's locals (here the database connection's wrapper) outlive
    the request, while two requests at once still never share a thread."""
    from asgiref.testing import ApplicationCommunicator
    from django.core.signals import request_finished
    from django.db import connections

    from kiwiwhale.asgi import RequestThreads, api_application, django_application

    seen = []

    def record(**kwargs):  # a sync receiver: it runs on the request's thread
        seen.append((threading.current_thread(), connections["default"]))

    async def get(app, path, headers=()):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 1),
                 "server": ("testserver", 80)}  # fmt: skip
        communicator = ApplicationCommunicator(app, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(5)
        await communicator.receive_output(5)
        await communicator.wait(5)
        return start["status"]

    async def run():
        sequential = [await get(django_application, "/healthz") for _ in range(3)]
        sequential.append(await get(api_application, "/api/v1/jobs.php", [(b"authorization", b"Bearer nope")]))
        at_once = await asyncio.gather(*(get(django_application, "/healthz") for _ in range(3)))
        return sequential, at_once

    request_finished.connect(record)
    try:
        sequential, at_once = asyncio.run(run())
    finally:
        request_finished.disconnect(record)
        for executor in django_application.threads.free:  # the kept threads' connections end with the test
            executor.submit(connections.close_all).result()
    assert sequential == [200, 200, 200, 401] and at_once == [200, 200, 200]
    threads = [thread for thread, _ in seen]
    assert all(thread.name.startswith("request") for thread in threads)
    assert threads[0] is threads[1] is threads[2] is threads[3]  # kept: the site's and the API's handler share them
    assert seen[0][1] is seen[3][1]  # and their thread-locals with them
    assert len({thread.ident for thread in threads[4:]}) == 3  # at once: a thread each

    threads = RequestThreads(keep=1)
    first, second = threads.lend(), threads.lend()
    assert first is not second
    threads.give_back(first)
    threads.give_back(second)  # over `keep`: shut down, not kept
    assert threads.free == [first] and second._shutdown
    assert threads.lend() is first
