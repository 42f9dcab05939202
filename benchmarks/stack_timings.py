"""The local stack's timings as a person meets them: start-up, an RSVP reaching the Bookings page, and Ctrl+C.

Starts ``python -m devtools.stack`` (the run command's stack) on free ports with a data directory of its
own, runs ``scripts/demo``'s journey against it (consent, sign-in, a booking), then answers the booking's
invitation ``--rsvps`` times in the local cloud ("Outlook"), each time as another attendee, and measures
how long until the service answers the booking with that response (what the Bookings page reads), polling
every 20 ms. The page itself reads every ``poll_seconds`` (the console's setting), so what a person waits
at most is that figure plus one poll interval; both are printed. Then Ctrl+C (SIGINT) and the time until
the process has exited; then the same stack again over the kept data (a restart), the first RSVPs after
it, and Ctrl+C again.

    .venv/bin/python benchmarks/stack_timings.py [--rsvps 6] [--idle 3]

Targets: an RSVP on the page within 3 s (also after a restart), the process gone within 1 s of SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ANSWERS = ("accepted", "declined", "tentativelyAccepted")


class Stack:
    def __init__(self, data_dir: Path, ports: tuple[int, int, int]) -> None:
        self.data_dir = data_dir
        self.port, self.cloud_port, self.console_port = ports
        self.console = f"http://localhost:{self.console_port}"
        self.cloud = f"https://127.0.0.1:{self.cloud_port}"
        self.output: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> float:
        env = {**os.environ, "XDG_CONFIG_HOME": str(self.data_dir / "config"), "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "devtools.stack", "--data-dir", str(self.data_dir)),
                *("--port", str(self.port), "--cloud-port", str(self.cloud_port)),
                *("--console-port", str(self.console_port)),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                if "Ctrl+C stops everything." in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(180):
            self.process.kill()
            raise SystemExit("the stack did not start within 180 s:\n" + "".join(self.output[-30:]))
        return time.monotonic() - started

    def interrupt(self) -> float:
        """SIGINT (Ctrl+C), then the seconds until the process has exited."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        return time.monotonic() - started


def rsvp_seconds(demo: Any, booking: dict[str, Any], attendee: str, answer: str) -> float:
    """Answer in the local cloud as ``attendee``; seconds until GET /api/bookings/{id} (through the console,
    as the Bookings page calls it) shows that answer."""
    started = time.monotonic()
    demo.expect(
        demo.control.post(
            f"/_control/graph/events/{booking['event_id']}/respond", json={"attendee": attendee, "response": answer}
        ),
        200,
    )
    while time.monotonic() - started < 60:
        current = demo.expect(demo.app("GET", f"bookings/{booking['id']}"), 200)
        if any(a["email"] == attendee and a.get("response") == answer for a in current.get("attendees", [])):
            return time.monotonic() - started
        time.sleep(0.02)
    return float("inf")


def rounds(demo: Any, booking: dict[str, Any], count: int, offset: int, idle: float) -> list[float]:
    """``count`` answers, each after ``idle`` quiet seconds: a person answers now and then, by which time
    the host's queue poller has backed off to its longest interval (maxPollingInterval)."""
    from devtools.demo import FIVE

    people = FIVE[1:]  # Alex declined in the demo itself
    figures = []
    for i in range(count):
        if i or offset:
            time.sleep(idle)
        who, answer = people[(offset + i) % len(people)], ANSWERS[(offset + i) % len(ANSWERS)]
        figures.append(rsvp_seconds(demo, booking, who, answer))
    return figures


def report(label: str, figures: list[float], poll: float) -> None:
    worst = max(figures)
    print(
        f"{label}: first {figures[0]:.2f} s, median {statistics.median(figures):.2f} s, max {worst:.2f} s "
        f"(service); on the page at most {worst + poll:.2f} s (+ one {poll:.1f} s page poll)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rsvps", type=int, default=6)
    parser.add_argument("--idle", type=float, default=3.0, help="quiet seconds before each answer")
    parser.add_argument("--log", action="store_true", help="print the stack's log lines about notifications")
    args = parser.parse_args()
    from devtools.azurite import free_port
    from devtools.demo import Demo

    work = Path(tempfile.mkdtemp(prefix="stack-timings-"))
    stack = Stack(work / "devdata", (free_port(), free_port(), free_port()))
    print(f"start-up (fresh data): {stack.start():.1f} s to the banner")
    try:
        demo = Demo(stack.console, stack.cloud, str(stack.data_dir / "cloud" / "ca-bundle.pem"))
        quiet = open(os.devnull, "w")  # noqa: SIM115 - the demo's own printing is not the figure
        saved, sys.stdout = sys.stdout, quiet
        try:
            demo.run()
        finally:
            sys.stdout = saved
            demo.restore_sign_in()
        booking = demo.booking
        assert booking is not None
        poll = float(demo.browser.request("GET", f"{stack.console}/app/config").json()["poll_seconds"])
        report("RSVP to the booking", rounds(demo, booking, args.rsvps, 0, args.idle), poll)
        print(f"Ctrl+C: the process exited {stack.interrupt():.2f} s after SIGINT")
        if args.log:
            print("".join(line for line in stack.output if "webhooks" in line or "otification" in line))

        print(f"restart (kept data): {stack.start():.1f} s to the banner")
        report("RSVP to the booking after the restart", rounds(demo, booking, args.rsvps, 1, args.idle), poll)
        print(f"Ctrl+C: the process exited {stack.interrupt():.2f} s after SIGINT")
    except Exception:
        print("".join(line for line in stack.output if "GET /api/bookings/" not in line)[-6000:], file=sys.stderr)
        raise
    finally:
        if stack.process is not None and stack.process.poll() is None:
            stack.interrupt()  # Ctrl+C: the stack stops its Azurite too (a kill would leave it running)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
