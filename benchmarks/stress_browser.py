"""Run the browser tests (``pytest -m browser``) several times in a row on a machine kept busy, and print pass/fail
per run: the proof of issue 12, point 6 (a browser suite that does not flake under load).

The load: one busy-loop process per core (``--load``, default every core), started before the first run and ended
after the last one (only the processes this script started, by their pid). Each run is a fresh pytest process with
its own log under ``--out``; the table at the end lists every run's outcome, its seconds and the tests that failed.

    python -m benchmarks.stress_browser --runs 10
    python -m benchmarks.stress_browser --runs 10 --max-minutes 60 --ignore tests/test_e2e_basemaps.py

Exit status 0 only when every run passed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _spin() -> None:  # pragma: no cover - runs in the load processes
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


def start_load(n: int) -> list[mp.Process]:
    """``n`` busy-loop processes (one core each)."""
    procs = [mp.get_context("spawn").Process(target=_spin, daemon=True, name=f"stress-load-{k}") for k in range(n)]
    for p in procs:
        p.start()
    return procs


def stop_load(procs: list[mp.Process]) -> None:
    """End the load processes this script started."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join(5)


def run_once(k: int, args: argparse.Namespace, out: Path) -> dict[str, object]:
    """One ``pytest -m browser`` run; its outcome, seconds, failed tests and log file."""
    log = out / f"run_{k:02d}.log"
    cmd = [sys.executable, "-m", "pytest", "-m", args.marker, "-q", "-p", "no:cacheprovider", "-rfE",
           *[f"--ignore={p}" for p in args.ignore], *args.pytest_args]
    env = {**os.environ, "BDA_ARTIFACTS": str(out / f"artifacts_{k:02d}")}
    t0 = time.monotonic()
    with open(log, "wb") as f:
        try:
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                                timeout=args.run_timeout).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    text = log.read_text(errors="replace")
    failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)))
    tail = text.strip().splitlines()[-1] if text.strip() else ""
    return {"run": k, "ok": rc == 0, "rc": rc, "seconds": round(time.monotonic() - t0, 1), "failed": failed,
            "summary": tail, "log": str(log)}


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the suite ``--runs`` times under load, print the table; 0 when every run passed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs in a row (default 10)")
    ap.add_argument("--load", type=int, default=os.cpu_count() or 2,
                    help="busy-loop processes kept running meanwhile (default: one per core; 0 for none)")
    ap.add_argument("--marker", default="browser", help="pytest -m expression (default: browser)")
    ap.add_argument("--ignore", action="append", default=[], help="a test file to leave out (repeatable)")
    ap.add_argument("--run-timeout", type=float, default=3600.0, help="seconds one run may take (default 3600)")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="start no further run once the next one (as long as the longest so far) would end past "
                         "this many minutes")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bda-stress"), help="folder of the logs and screenshots")
    ap.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.load < 0:
        ap.error("--runs must be at least 1 and --load at least 0")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{args.runs} run(s) of pytest -m {args.marker!r} with {args.load} busy-loop process(es) on "
          f"{os.cpu_count()} core(s); ignored: {args.ignore or 'none'}; logs in {args.out}", flush=True)
    load = start_load(args.load)
    results: list[dict[str, object]] = []
    try:
        t0 = time.monotonic()
        for k in range(1, args.runs + 1):
            longest = max((float(r["seconds"]) for r in results), default=0.0)  # type: ignore[arg-type]
            if args.max_minutes is not None and time.monotonic() - t0 + longest > 60 * args.max_minutes:
                print(f"stopping after {k - 1} run(s): --max-minutes {args.max_minutes:g} reached", flush=True)
                break
            r = run_once(k, args, args.out)
            results.append(r)
            print(f"run {k:2d}: {'PASS' if r['ok'] else 'FAIL'} in {r['seconds']:7.1f} s  {r['summary']}"
                  + (f"  failed: {', '.join(r['failed'])}" if r["failed"] else ""), flush=True)
    finally:
        stop_load(load)
    passed = sum(bool(r["ok"]) for r in results)
    print(f"passed {passed} of {len(results)} run(s) in a row under load" if passed == len(results) else
          f"FLAKY: {len(results) - passed} of {len(results)} run(s) failed", flush=True)
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
