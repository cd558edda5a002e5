"""Runs the web server, a Celery worker and beat together, restarting any that exits, until Ctrl-C or SIGTERM.

    python scripts/supervise.py web=scripts/web worker=scripts/worker beat=scripts/beat

A crashed worker is restarted after a short back-off (1 s, doubling up to 30 s; reset once it has run for a
minute), and the others go on serving. Ctrl-C (or SIGTERM) stops them all: politely first, by force after 10 s.
Each child runs in its own process group, so a Ctrl-C in the terminal reaches only this supervisor, which then
stops the children in order instead of all of them dying at once mid-write.
"""

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

STOP_GRACE_SECONDS = 10
HEALTHY_AFTER_SECONDS = 60
MAX_BACKOFF_SECONDS = 30


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff: float = 1.0
    restart_at: float | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, start_new_session=True)  # noqa: S603 - our own scripts
        self.started_at = time.monotonic()
        self.restart_at = None

    def signal(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)


def log(message: str) -> None:
    print(f"[supervise] {message}", flush=True)


def main(argv: list[str]) -> int:
    children = []
    for spec in argv:
        name, _, command = spec.partition("=")
        children.append(Child(name=name, command=shlex.split(command)))
    if not children:
        print(__doc__)
        return 2

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for child in children:
        child.start()
        log(f"started {child.name} (pid {child.process.pid})")

    while not stopping:
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start()
                    child.restarts += 1
                    log(f"restarted {child.name} (pid {child.process.pid}, restart {child.restarts})")
                continue
            code = child.process.poll()
            if code is None:
                continue
            if now - child.started_at >= HEALTHY_AFTER_SECONDS:
                child.backoff = 1.0
            log(f"{child.name} exited with {code}; restarting in {child.backoff:.0f} s")
            child.restart_at = now + child.backoff
            child.backoff = min(child.backoff * 2, MAX_BACKOFF_SECONDS)
        time.sleep(0.2)

    log("stopping…")
    for child in reversed(children):
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and any(c.process and c.process.poll() is None for c in children):
        time.sleep(0.2)
    for child in children:
        child.signal(signal.SIGKILL)
        if child.process:
            child.process.wait()
    log("KiwiWhale stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
