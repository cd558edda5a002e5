"""KiwiWhale against its floor, interleaved A/B: `make bench` (or `.venv/bin/python bench/run.py --help`).

It creates its own PostgreSQL database (BENCH_DATABASE_URL), migrates and seeds it, starts KiwiWhale exactly as
production does (scripts/web: uvicorn, WEB_CONCURRENCY=2; scripts/worker) and the floor (bench/floor: a bare
Django project on the same server, database and pool settings), then runs pairs — KiwiWhale, floor, KiwiWhale,
floor… — with wrk, and prints the medians, their ratios and spreads:

- P1 poll: `GET jobs.php?job_id=` with a bearer key, 8 connections, vs one indexed SELECT;
- P2 submit: `POST generate.php`, 32 connections, vs one conditional UPDATE of the wallet + one INSERT;
- P3 submit → completed of the cheapest local model polled every 20 ms, vs a bare Celery task round trip;
- P4 64 simultaneous submits on one wallet vs on 64 wallets (throughput ratio);
- P5 (with --million) poll and history latency at 1M jobs vs 10k;
- the resident memory of each web process, KiwiWhale's and the floor's.

The figures go to stdout and, with --write, into docs/performance.md between its bench markers, with the
machine's load average noted. Nothing here is a test: the numbers depend on the machine.
"""

import argparse
import collections
import concurrent.futures
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kiwiwhale_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
CHEAP = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


def env(**extra) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": DB_URL,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench-only-secret-key",
        "DEBUG": "0",
        "SERVE_PLAIN_HTTP": "1",
        "LOG_LEVEL": "WARNING",
        "CELERY_QUEUE": "bench",
        # The path is measured, not the per-account limiter (whose counter is still paid): 32 connections on one
        # account pass 120 submits a minute within a second, and 429s would count as fast answers.
        "RATE_GENERATE_ACCOUNT": "100000000/minute",
        "MEDIA_ROOT": str(Path(tempfile.gettempdir()) / "kiwiwhale-bench-media"),
        "PATH": f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}",
        **extra,
    }


PORT_BASE = int(os.environ.get("BENCH_PORT", "0"))  # KiwiWhale on it, the floor on the next; 0: any free ports


def free_port(offset: int = 0) -> int:
    import socket

    if PORT_BASE:
        return PORT_BASE + offset
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- set-up ---------------------------------------------------------------------------------------------------


def database_prepare(jobs: int) -> dict:
    base, _, name = DB_URL.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    for command in (["migrate", "--noinput", "-v0"], ["seed_catalog"]):
        subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env(), check=True, stdout=subprocess.DEVNULL)
    script = f"""
import json
from django.utils import timezone
from apps.accounts.services import api_key_create
from apps.billing import money
from apps.billing.services import credits_grant
from apps.catalog.models import AIModel
from apps.generations.models import Job, Output, job_id_new
from tests.conftest import make_user

model = AIModel.objects.get(public_model="local/procedural-image")
users, keys = [], []
for index in range(65):
    user = make_user(f"bench{{index}}", credits="0")
    amount = money.credits_to_micro("100000")
    credits_grant(user=user, amount_micro=amount, reason="bench", idempotency_key=f"b:{{index}}")
    users.append(user)
    keys.append(api_key_create(user=user, name="bench")[1])
now = timezone.now()
rows = [Job(id=job_id_new(), user=users[0], model=model, input=CHEAP_INPUT, cost_micro=10000,
            status=Job.Status.COMPLETED, started_at=now, completed_at=now) for _ in range({jobs})]
Job.objects.bulk_create(rows, batch_size=5000)
Output.objects.bulk_create([Output(job=job, type="image", content_type="image/png", file_name="out.png",
                                   file="outputs/bench/out.png", width=64, height=64) for job in rows], batch_size=5000)
print("BENCH" + json.dumps({{"keys": keys, "user_ids": [u.pk for u in users], "job_id": rows[-1].pk}}))
""".replace("CHEAP_INPUT", repr(CHEAP["input"]))
    out = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env(), check=True, capture_output=True, text=True
    ).stdout
    data = json.loads(next(line for line in out.splitlines() if line.startswith("BENCH"))[5:])
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor_job (id text PRIMARY KEY, input jsonb NOT NULL)")
    return data


def million_jobs(user_id: int, count: int = 1_000_000) -> None:
    """Adds `count` completed jobs (without outputs) for another user, in SQL: the rows the hot paths must ignore."""
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        model_id = conn.execute(
            "SELECT id FROM catalog_aimodel WHERE public_model = 'local/procedural-image'"
        ).fetchone()[0]
        conn.execute(
            """INSERT INTO generations_job (id, user_id, model_id, input, cost_micro, status, created_at, started_at,
               completed_at, attempts, usage, error_code, error_message, provider, webhook_url, webhook_events,
               upstream_id, upstream_state, lease_owner, staged_files, requeues, enqueued_at, stream_text)
               SELECT 'job_m' || g, %s, %s, '{}'::jsonb, 10000, 'completed', now(), now(), now(), 1, '{}'::jsonb,
                      '', '', 'local', '', '[]'::jsonb, '', '{}'::jsonb, '', '[]'::jsonb, 0, now(), false
               FROM generate_series(1, %s) g""",
            [user_id, model_id, count],
        )
        conn.execute("ANALYZE generations_job")


# --- processes ------------------------------------------------------------------------------------------------


class Processes:
    def __init__(self):
        self.running: list[subprocess.Popen] = []

    def start(self, command: list[str], **extra) -> subprocess.Popen:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env(**extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self.running.append(process)
        return process

    def web(self, command: list[str], **extra) -> tuple[str, subprocess.Popen]:
        port = free_port()
        process = self.start(command, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2", **extra)
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(base + "/", timeout=1)
                return base, process
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit(f"{command} did not start")

    def stop(self) -> None:
        for process in self.running:
            process.terminate()
        for process in self.running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def rss_mib(parent: subprocess.Popen) -> list[float]:
    """Resident memory of each web worker process (the children of the server's supervisor)."""
    out = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
    sizes = []
    for pid in out:
        if b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes():
            continue  # multiprocessing's helper, not a web process
        status = Path(f"/proc/{pid}/status").read_text()
        sizes.append(int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024)
    return sizes


# --- load -----------------------------------------------------------------------------------------------------


def wrk(url: str, *, connections: int, seconds: int, headers: dict, body: dict | None = None) -> dict:
    script = None
    if body is not None:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(
            'wrk.method = "POST"\nwrk.body = [['
            + json.dumps(body)
            + ']]\nwrk.headers["Content-Type"] = "application/json"\n'
        )
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p50_ms = float(p50[1]) * {"us": 0.001, "ms": 1, "s": 1000}[p50[2]]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50_ms": p50_ms,
        "non2xx": int(non2xx[1]) if non2xx else 0,
        "errors": errors[1] if errors else "",
    }


def ratio_line(name: str, ours: list[float], floor: list[float], unit: str, goal: str) -> dict:
    ratios = [a / b for a, b in zip(ours, floor, strict=True)]  # each pair's own ratio: drift cancels out
    return {
        "path": name,
        "ours": statistics.median(ours),
        "floor": statistics.median(floor),
        "ratio": statistics.median(ratios),
        "spread": (min(ratios), max(ratios)),
        "unit": unit,
        "goal": goal,
    }


def round_trip_ours(base: str, key: str, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    times = []
    with httpx.Client(base_url=base, headers=headers) as client:
        for _ in range(count):
            started = time.perf_counter()
            job_id = client.post("/api/v1/generate.php", json=CHEAP).json()["job_id"]
            while client.get("/api/v1/jobs.php", params={"job_id": job_id}).json()["status"] != "completed":
                time.sleep(0.02)
            times.append((time.perf_counter() - started) * 1000)
    return times


def round_trip_ours_waited(base: str, key: str, count: int) -> list[float]:
    """Submit with `Prefer: wait`: one request, answered when the job ends (woken by the worker's notification)."""
    headers = {"Authorization": f"Bearer {key}", "Prefer": "wait=10"}
    times = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            assert client.post("/api/v1/generate.php", json=CHEAP).json()["status"] == "completed"
            times.append((time.perf_counter() - started) * 1000)
    return times


def round_trip_floor(count: int, interval: float = 0.02) -> list[float]:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = DB_URL, REDIS_URL
    from bench.floor.celery_app import touch

    times = []
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        for _ in range(count):
            row_id = uuid.uuid4().hex
            started = time.perf_counter()
            touch.delay(row_id)
            while conn.execute("SELECT 1 FROM bench_floor_job WHERE id = %s", [row_id]).fetchone() is None:
                time.sleep(interval)
            times.append((time.perf_counter() - started) * 1000)
    return times


def burst(url: str, bodies_headers: list[tuple[dict, dict]]) -> tuple[float, collections.Counter]:
    def one(pair):
        body, headers = pair
        try:
            return httpx.post(url, json=body, headers=headers, timeout=60).status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(bodies_headers)) as pool:
        codes = collections.Counter(pool.map(one, bodies_headers))
    return len(bodies_headers) / (time.perf_counter() - started), codes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- main -----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5, help="interleaved A/B pairs per path (default 5)")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--million", action="store_true", help="also P5: poll and history at 1M jobs vs 10k")
    parser.add_argument("--write", action="store_true", help="write the results into docs/performance.md")
    args = parser.parse_args()
    load = os.getloadavg()  # before the run: the run itself loads both cores

    print("Preparing the bench database…", flush=True)
    data = database_prepare(jobs=10_000)
    keys, user_ids, job_id = data["keys"], data["user_ids"], data["job_id"]
    processes = Processes()
    results, notes = [], []
    try:
        ours, ours_proc = processes.web([str(ROOT / "scripts" / "web")], PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp())
        port = free_port(1)
        floor_proc = processes.start(
            [PYTHON, "-m", "uvicorn", "bench.floor.asgi:application", "--no-access-log", "--workers", "2",
             "--host", "127.0.0.1", "--port", str(port), "--backlog", "2048"],
            DJANGO_SETTINGS_MODULE="bench.floor.settings",
        )  # fmt: skip
        floor = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(floor + "/poll?job_id=x&user_id=0", timeout=1)
                break
            except (httpx.TransportError, httpx.HTTPStatusError):
                time.sleep(0.1)
        bearer = {"Authorization": f"Bearer {keys[0]}"}

        # P1 poll and P2 submit, interleaved.
        poll_ours, poll_floor, sub_ours, sub_floor = [], [], [], []
        for _ in range(args.pairs):
            poll_ours.append(wrk(f"{ours}/api/v1/jobs.php?job_id={job_id}", connections=8, seconds=args.seconds,
                                 headers=bearer))  # fmt: skip
            poll_floor.append(wrk(f"{floor}/poll?job_id={job_id}&user_id={user_ids[0]}", connections=8,
                                  seconds=args.seconds, headers=bearer))  # fmt: skip
            sub_ours.append(wrk(f"{ours}/api/v1/generate.php", connections=32, seconds=args.seconds, headers=bearer,
                                body=CHEAP))  # fmt: skip
            sub_floor.append(wrk(f"{floor}/submit", connections=32, seconds=args.seconds, headers={},
                                 body={**CHEAP, "user_id": user_ids[0]}))  # fmt: skip
        for run in (*poll_ours, *sub_ours, *poll_floor, *sub_floor):
            if run["non2xx"] or run["errors"]:
                notes.append(f"wrk saw {run['non2xx']} non-2xx answers, socket errors: {run['errors'] or 'none'}")
        rps = lambda runs: [r["rps"] for r in runs]  # noqa: E731
        results.append(ratio_line("P1 poll `jobs.php?job_id` (bearer), 8 connections", rps(poll_ours), rps(poll_floor),
                                  "req/s", "≥ 0.8"))  # fmt: skip
        results[-1]["p50"] = (statistics.median(r["p50_ms"] for r in poll_ours),
                              statistics.median(r["p50_ms"] for r in poll_floor))  # fmt: skip
        results.append(ratio_line("P2 submit `generate.php`, 32 connections", rps(sub_ours), rps(sub_floor),
                                  "req/s", "≥ 0.5"))  # fmt: skip
        memory = {"ours": rss_mib(ours_proc), "floor": rss_mib(floor_proc)}

        # P3: submit → completed, with a real worker, vs a bare Celery round trip.
        with psycopg.connect(DB_URL, autocommit=True) as conn:  # the P2 backlog is not P3's business
            conn.execute("UPDATE generations_job SET status = 'canceled' WHERE status = 'queued'")
        subprocess.run([PYTHON, "-m", "celery", "-A", "kiwiwhale", "purge", "-f", "-Q", "bench"], cwd=ROOT,
                       env=env(), capture_output=True)  # fmt: skip
        processes.start([str(ROOT / "scripts" / "worker"), "--pool=threads"], WORKER_CONCURRENCY="2")
        processes.start([PYTHON, "-m", "celery", "-A", "bench.floor.celery_app", "worker", "--pool=threads",
                         "--concurrency=2", "--loglevel=WARNING"])  # fmt: skip
        time.sleep(6)
        round_trip_ours(ours, keys[1], 5)  # warm-up
        round_trip_floor(5)
        trips_ours, trips_floor, waited_ours, waited_floor = [], [], [], []
        for _ in range(args.pairs):
            trips_ours += round_trip_ours(ours, keys[1], 10)
            trips_floor += round_trip_floor(10)
            waited_ours += round_trip_ours_waited(ours, keys[1], 10)
            waited_floor += round_trip_floor(10, interval=0.001)
        p3 = {
            "ours": (statistics.median(trips_ours), percentile(trips_ours, 0.95)),
            "floor": (statistics.median(trips_floor), percentile(trips_floor, 0.95)),
            "waited": (statistics.median(waited_ours), percentile(waited_ours, 0.95)),
            "tight": (statistics.median(waited_floor), percentile(waited_floor, 0.95)),
        }

        # P4: 64 submits at once on one wallet vs on 64 wallets.
        hot = []
        for _ in range(args.pairs):
            one, codes_one = burst(
                f"{ours}/api/v1/generate.php", [(CHEAP, {"Authorization": f"Bearer {keys[2]}"})] * 64
            )
            many, codes_many = burst(
                f"{ours}/api/v1/generate.php", [(CHEAP, {"Authorization": f"Bearer {k}"}) for k in (keys[1:] * 2)[:64]]
            )
            hot.append(one / many)
            if set(codes_one) != {202} or set(codes_many) != {202}:
                notes.append(f"P4 answers: one wallet {dict(codes_one)}, 64 wallets {dict(codes_many)}")

        # P5: poll and history at 1M jobs vs 10k.
        p5 = None
        if args.million:

            def latency(path: str, params: dict) -> float:
                with httpx.Client(base_url=ours, headers=bearer) as client:
                    times = []
                    for _ in range(200):
                        started = time.perf_counter()
                        client.get(path, params=params)
                        times.append(time.perf_counter() - started)
                return statistics.median(times) * 1000

            small = (latency("/api/v1/jobs.php", {"job_id": job_id}), latency("/api/v1/jobs.php", {}))
            million_jobs(user_ids[64])
            big = (latency("/api/v1/jobs.php", {"job_id": job_id}), latency("/api/v1/jobs.php", {}))
            p5 = (big[0] / small[0], big[1] / small[1])
    finally:
        processes.stop()

    report = render(results, p3, hot, p5, memory, notes, args, load)
    print(report)
    if args.write:
        path = ROOT / "docs" / "performance.md"
        text = path.read_text()
        before, _, rest = text.partition(MARK_START)
        _, _, after = rest.partition(MARK_END)
        path.write_text(f"{before}{MARK_START}\n{report}\n{MARK_END}{after}")
        print(f"Written to {path.relative_to(ROOT)}")


def render(results, p3, hot, p5, memory, notes, args, load) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make bench` on {os.cpu_count()} cores "
        f"(load average before the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}); {args.pairs} interleaved "
        f"pairs of {args.seconds} s each, medians, ratio spread in brackets."
        + (
            " **The machine was busy with other work (load above its core count): read the ratios, not the absolute"
            " figures, and run `make bench` again on a quiet machine.**"
            if load[0] > (os.cpu_count() or 1)
            else ""
        ),
        "",
        "| path | KiwiWhale | floor | ratio [spread] | goal |",
        "|---|---|---|---|---|",
    ]
    for row in results:
        p50 = f", p50 {row['p50'][0]:.1f} ms" if "p50" in row else ""
        p50_floor = f", p50 {row['p50'][1]:.1f} ms" if "p50" in row else ""
        lines.append(
            f"| {row['path']} | {row['ours']:,.0f} {row['unit']}{p50} | {row['floor']:,.0f} {row['unit']}{p50_floor} "
            f"| **{row['ratio']:.2f}** [{row['spread'][0]:.2f}–{row['spread'][1]:.2f}] | {row['goal']} |"
        )
    (ours50, ours95), (floor50, floor95) = p3["ours"], p3["floor"]
    lines.append(
        f"| P3 submit → completed, cheapest local model, polled every 20 ms | p50 {ours50:.1f} ms, p95 {ours95:.1f} ms "
        f"| bare Celery round trip p50 {floor50:.1f} ms, p95 {floor95:.1f} ms "
        f"| **{ours50 / floor50:.1f}× / {ours95 / floor95:.1f}×** | ≤ 1.5× |"
    )
    (waited50, waited95), (tight50, tight95) = p3["waited"], p3["tight"]
    lines.append(
        f"| P3w the same with `Prefer: wait` (one request, woken by the worker), against the floor polled every 1 ms "
        f"| p50 {waited50:.1f} ms, p95 {waited95:.1f} ms | p50 {tight50:.1f} ms, p95 {tight95:.1f} ms "
        f"| {waited50 / tight50:.1f}× / {waited95 / tight95:.1f}× | (none: what an agent that waits sees) |"
    )
    lines.append(
        f"| P4 64 submits on one wallet vs 64 wallets | | | **{statistics.median(hot):.2f}** "
        f"[{min(hot):.2f}–{max(hot):.2f}] | ≥ 0.5 |"
    )
    if p5:
        lines.append(f"| P5 poll and history at 1M jobs vs 10k | | | **{p5[0]:.2f} / {p5[1]:.2f}** | ≤ 1.2 |")
    else:
        lines.append(
            "| P5 poll and history at 1M jobs vs 10k | | | not run (`make bench BENCH_ARGS=--million`) | ≤ 1.2 |"
        )
    lines += [
        "",
        "Memory per web process (resident, after the load): KiwiWhale "
        + ", ".join(f"{m:.0f} MiB" for m in memory["ours"])
        + "; floor "
        + ", ".join(f"{m:.0f} MiB" for m in memory["floor"])
        + ".",
    ]
    if notes:
        lines += ["", "Notes: " + "; ".join(sorted(set(notes)))]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
