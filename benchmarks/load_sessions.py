"""Multi-session load benchmark: N browser sessions analyse N different real images at once on ONE server, and
every page is checked against the workspace (harness: tests/support/load_sessions.py).

    python -m benchmarks.load_sessions [--sessions 8] [--timeout 900] [--threads 1] [--shots DIR] [--json]

Run from the repository root. SIGALRM stops a run that still hangs past its deadline. Exit status 0 only when all
was right.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.support.data import SHARED_DATA
from tests.support.load_sessions import MAX_SESSIONS, DeadlineExceeded, run_load


def print_report(rep: dict[str, Any]) -> None:
    """The figures of a run, one per line."""
    t = rep["to_result_s"] or {}
    print(f"sessions            {rep['sessions']} ({', '.join(rep['images'])})")
    print(f"wall time           {rep['wall_s']} s server start to stop; first click to last result "
          f"{rep['analyse_phase_s']} s")
    print(f"time to result      min {t.get('min')} s / median {t.get('median')} s / max {t.get('max')} s")
    print(f"per session         {rep['per_session_s']}")
    print(f"failed sessions     {len(rep['failed'])} {rep['failed'] or ''}")
    print(f"mixed-up results    {len(rep['mixed_up'])} {rep['mixed_up'] or ''}")
    print(f"blocked requests    {len(rep['blocked_requests'])} {rep['blocked_requests'][:3] or ''}")
    print(f"server RSS          {rep['server_rss_before_mib']} MiB before the clicks, peak (VmHWM) "
          f"{rep['server_peak_rss_mib']} MiB; server CPU {rep['server_cpu_s']} s")
    warn = "  WARNING: sessions opening at once on an empty workspace each made one" * (rep["default_cases"] > 1)
    print(f"default 'Case 1'    {rep['default_cases']} (expected 1){warn}")
    for p in rep["problems"][:40]:
        print(f"PROBLEM  {p}")
    if rep["error"]:
        print(f"ERROR    {rep['error']}")
    print("RESULT  ", "ok" if rep["ok"] else "FAILED")


def _alarm(signum: int, frame: Any) -> None:
    raise DeadlineExceeded("hard deadline: a wait ignored its timeout")


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run, print the figures (and JSON with --json); 0 when every session was right."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=8, help=f"browser sessions, 1..{MAX_SESSIONS} (default 8)")
    ap.add_argument("--timeout", type=float, default=900, help="deadline of the whole run in seconds (default 900)")
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads of the server (default 1)")
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    ap.add_argument("--model", type=Path, default=None, help="checkpoint (default: BDA_MODEL or the bundled model)")
    ap.add_argument("--shots", type=Path, default=None, help="folder for a screenshot of every session's page")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(args.timeout) + 60)  # backstop over the per-wait timeouts
    try:
        with tempfile.TemporaryDirectory(prefix="bda-load-") as tmp:
            rep = run_load(args.sessions, args.timeout, args.data, Path(tmp), threads=args.threads,
                           model=args.model, shots=args.shots).report
    finally:
        signal.alarm(0)
    print_report(rep)
    if args.json:
        print(json.dumps(rep))
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
