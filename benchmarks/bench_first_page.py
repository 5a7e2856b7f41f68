"""First page on a fresh server, in a real browser (issue 10: it draws in <= 3 s, the model behind a spinner).

    python -m benchmarks.bench_first_page [--runs 3] [--model PATH] [--compare DIR] [--json PATH]

Each run starts a new ``streamlit run app.py`` (a fresh server: nothing imported, no model cached) on a loopback
port with a new empty workspace and the default model (``assets/models/patchcore-vgg16.pt``, or ``--model``), and
a headless chromium (tests/support/browser.py) that was started beforehand, so its own start is not counted. The
clock starts when the server process is spawned; the browser opens the app as soon as the server answers its health
check. A MutationObserver in the page stamps the first moment each of these is on screen:

* ``health``: the server answers ``/_stcore/health`` (Streamlit itself has started);
* ``app``: Streamlit's page frame is drawn in the browser (its scripts have loaded; nothing of the app yet);
* ``menu``: the app's own menu (the sidebar's page links);
* ``title``: the page's title "Analyze" (the first page's content);
* ``spinner``: the "Loading the model…" spinner (absent when the model was loaded before the page drew);
* ``widgets``: the page's uploader (the analyst can bring images in);
* ``model``: the sidebar's model line (``sha256 …``): the model is loaded and in use.

``--compare DIR`` runs another checkout of the app (e.g. ``git archive <commit> | tar -x -C DIR``) in turns with
this one, run for run, so both see the same machine load.

The machine's load average (``/proc/loadavg``) is printed with each run: the figures are wall times on a shared
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.assets import DEFAULT_MODEL
from tests.support.browser import free_port, offline_browser, stop_server, wait_healthy
from tests.support.data import REPO

#: Milestones in the order they should appear, with the test run in the page on every DOM change.
MARKS = {
    "app": "!!document.querySelector('[data-testid=stApp]')",
    "menu": "[...document.querySelectorAll('[data-testid=stSidebar] a')].some(a => a.textContent.includes('Analyze'))",
    "title": "[...document.querySelectorAll('h1')].some(h => h.textContent.includes('Analyze'))",
    "spinner": "[...document.querySelectorAll('[data-testid=stSpinner]')].some(s => "
               "s.textContent.includes('Loading the model'))",
    "widgets": "!!document.querySelector('[data-testid=stFileUploaderDropzone]')",
    "model": "[...document.querySelectorAll('[data-testid=stSidebar] [data-testid=stCaptionContainer]')].some(c => "
             "c.textContent.includes('sha256'))",
}

_OBSERVER = """
window.__marks = {};
const checks = {CHECKS};
const look = () => {
  for (const [name, test] of Object.entries(checks)) {
    if (!(name in window.__marks)) { try { if (test()) window.__marks[name] = Date.now(); } catch (e) {} }
  }
};
new MutationObserver(look).observe(document, {subtree: true, childList: true, characterData: true});
""".replace("CHECKS", ", ".join(f"{k}: () => {v}" for k, v in MARKS.items()))


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def one_run(model: Path, tmp: Path, page: Any, repo: Path = REPO) -> dict[str, float]:
    """Seconds from spawning a fresh server to each milestone of :data:`MARKS` (and ``health``)."""
    port = free_port()
    ws = tmp / f"ws-{port}"
    ws.mkdir()
    env = {**os.environ, "BDA_WORKSPACE": str(ws), "BDA_MODEL": str(model), "BDA_LANG": "en"}
    cmd = [sys.executable, "-m", "streamlit", "run", str(repo / "app.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    url = f"http://127.0.0.1:{port}"
    with open(ws / "streamlit.log", "wb") as log:
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(proc, url, ws / "streamlit.log", 120, poll=0.02)
            out = {"health": time.time() - t0}
            page.goto(url, wait_until="commit")
            page.wait_for_function("() => window.__marks && 'model' in window.__marks && 'widgets' in window.__marks",
                                   polling=100, timeout=300_000)
            marks = page.evaluate("() => window.__marks")
            out |= {k: marks[k] / 1000 - t0 for k in MARKS if k in marks}
            page.goto("about:blank")
        finally:
            stop_server(proc)
    return out


def main() -> int:
    """Print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model", type=Path, default=Path(os.environ.get("BDA_MODEL") or DEFAULT_MODEL))
    ap.add_argument("--compare", type=Path, default=None, help="another checkout of the app, run in turns with this")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not a.model.is_file():
        print(f"skipped: the default model {a.model} is missing (pass --model or set BDA_MODEL)")
        return 0
    apps = {"this": REPO} | ({"compare": a.compare.resolve()} if a.compare else {})
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in apps}
    names = ["health", *MARKS]
    with tempfile.TemporaryDirectory(prefix="bench-first-page-") as tmp, offline_browser() as (page, blocked):
        page.context.add_init_script(_OBSERVER)
        for k in range(a.runs):
            for which, repo in apps.items():
                load = _loadavg()
                r: dict[str, Any] = dict(one_run(a.model, Path(tmp), page, repo))
                r["loadavg"] = load
                runs[which].append(r)
                print(f"run {k + 1} {which} (load average {load}): " + ", ".join(
                    f"{n} {r[n]:.2f} s" if n in r else f"{n} —" for n in names), flush=True)
        assert not blocked, f"the app reached outside the machine: {blocked[:3]}"
    for which, repo in apps.items():
        print(f"{which} ({repo}):")
        for n in names:
            got = [r[n] for r in runs[which] if n in r]
            if got:
                print(f"  {n:8s} median {statistics.median(got):.2f} s (min {min(got):.2f}, max {max(got):.2f})")
        late = [r for r in runs[which] if "widgets" in r and r["widgets"] > r["model"]]
        print(f"  the page's widgets came after the model in {len(late)} of {len(runs[which])} runs")
    print(f"model {a.model.name}; target: the first page (title and widgets) <= 3 s after the server starts")
    if a.json:
        Path(a.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
