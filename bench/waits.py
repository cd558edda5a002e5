"""Open waits against poll latency, on the real server (run by hand; the figures go into docs/performance.md).

    .venv/bin/python bench/waits.py [--waits 100] [--polls 300] [--database-url postgres://…] [--redis-url redis://…]

It migrates and seeds a database of its own (created when missing), starts `scripts/web` (uvicorn, ASGI,
WEB_CONCURRENCY=2, DEBUG off) on a free port with no Celery worker, so the jobs it submits stay queued, then:

1. baseline: sequential polls of one job (`GET jobs.php?job_id=`), latency percentiles;
2. opens N waits (`GET jobs.php?job_id=…&wait=60`, one per job, all at once) and polls again while they are open,
   counting the server processes' threads;
3. cancels the N jobs (`POST cancel.php`) and measures how long each wait takes to answer after its cancel
   (the Redis pub/sub wake-up; the database re-read every 20-500 ms without Redis).
"""

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_ensure(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def account_create() -> str:
    import django

    django.setup()
    from apps.accounts.models import User
    from apps.accounts.services import account_setup, api_key_create
    from apps.billing.services import credits_grant

    user = User.objects.create_user(username=f"bench-{uuid.uuid4().hex[:8]}", password=uuid.uuid4().hex)
    account_setup(user=user)
    credits_grant(user=user, amount_micro=100_000_000, reason="bench", idempotency_key=f"bench:{user.pk}")
    return api_key_create(user=user, name="bench")[1]


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    cut = statistics.quantiles(ms, n=100)
    return f"p50 {cut[49]:.1f} ms · p95 {cut[94]:.1f} ms · p99 {cut[98]:.1f} ms · max {ms[-1]:.1f} ms"


def threads_of(root_pid: int) -> int:
    pids = [root_pid]
    for line in subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(root_pid)], capture_output=True, text=True
    ).stdout.split():
        pids.append(int(line))
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            total += len(os.listdir(f"/proc/{pid}/task"))
    return total


async def polls(client, base, headers, job_id, count) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(f"{base}/api/v1/jobs.php", params={"job_id": job_id}, headers=headers)
        response.raise_for_status()
        samples.append(time.perf_counter() - started)
    return samples


async def run(base: str, key: str, waits: int, poll_count: int, server_pid: int) -> None:
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "local/procedural-image", "input": {"prompt": "bench", "width": 64, "height": 64}}
    limits = httpx.Limits(max_connections=waits + 20, max_keepalive_connections=waits + 20)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client, httpx.AsyncClient(timeout=30) as poller:
        jobs = []
        for _ in range(waits + 1):
            response = await client.post(f"{base}/api/v1/generate.php", json=body, headers=headers)
            response.raise_for_status()
            jobs.append(response.json()["job_id"])
        probe, waited = jobs[0], jobs[1:]
        await polls(poller, base, headers, probe, 20)  # warm up
        threads_idle = threads_of(server_pid)
        baseline = await polls(poller, base, headers, probe, poll_count)

        ended_at: dict[str, float] = {}

        async def wait(job_id):
            response = await client.get(
                f"{base}/api/v1/jobs.php", params={"job_id": job_id, "wait": 60}, headers=headers
            )
            ended_at[job_id] = time.perf_counter()
            return response.json().get("status") or f"{response.status_code} {response.json().get('error')}"

        tasks = [asyncio.create_task(wait(job_id)) for job_id in waited]
        await asyncio.sleep(3)  # every wait is open and subscribed
        open_before = sum(not task.done() for task in tasks)
        threads_waiting = threads_of(server_pid)
        loaded = await polls(poller, base, headers, probe, poll_count)
        open_after = sum(not task.done() for task in tasks)

        canceled_at = {}
        for job_id in waited:
            canceled_at[job_id] = time.perf_counter()
            (
                await poller.post(f"{base}/api/v1/cancel.php", json={"job_id": job_id}, headers=headers)
            ).raise_for_status()
        statuses = await asyncio.gather(*tasks)
        wake = [ended_at[job_id] - canceled_at[job_id] for job_id in waited]

    print(
        f"server: uvicorn, 2 worker processes; {os.cpu_count()} CPU cores; Redis: {bool(os.environ.get('REDIS_URL'))}"
    )
    print(f"polls, no wait open ({poll_count}):        {percentiles(baseline)}")
    print(f"polls, {open_before} waits open ({poll_count}):  {percentiles(loaded)}  (still open after: {open_after})")
    print(f"wait answered after its job's cancel: {percentiles(wake)}; statuses: {set(statuses)}")
    print(f"server threads: {threads_idle} idle → {threads_waiting} with {open_before} waits open")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waits", type=int, default=100)
    parser.add_argument("--polls", type=int, default=300)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/kw_bench_waits")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"))
    args = parser.parse_args()

    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "CELERY_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",  # no worker consumes it: the jobs stay queued
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-" + uuid.uuid4().hex),
        "DEBUG": "0",
        "SERVE_PLAIN_HTTP": "1",
        "DB_CONN_MAX_AGE": "0",
        "RATE_AGENT_REGISTER": "1000/hour",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiwiwhale.settings")
    sys.path.insert(0, str(ROOT))
    database_ensure(args.database_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "seed_catalog"], cwd=ROOT, env=env, check=True, capture_output=True)
    key = account_create()

    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / "scripts" / "web")],
        cwd=ROOT,
        env={**env, "PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "2", "LOG_LEVEL": "WARNING"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        asyncio.run(run(base, key, args.waits, args.polls, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
