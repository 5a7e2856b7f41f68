"""Multi-session load harness: N browser sessions analyse N different real images at once on ONE server.

Run by ``tests/test_load_sessions.py``, and with its figures printed by ``python -m benchmarks.load_sessions``. One
``streamlit run app.py`` on a loopback port and one headless chromium whose non-loopback requests are aborted (both
from tests/support/browser.py); N tabs are N independent Streamlit sessions. Each sets its own analyst name, creates
its own case with the sidebar's "New case" form and uploads a different AIDER photo from ../shared/data; then all N
click "Analyse 1 image" back to back and the script waits for every result. Every page is then checked against the
workspace (``core.store.Workspace``): it shows ITS case, analysis, image and the image score recorded for it, no
other session's image and no error; every analysis has exactly one input, the very file its session uploaded
(sha256).

Bounded: at most 16 sessions, and every wait takes its timeout from one deadline for the whole run (the benchmark
adds a SIGALRM backstop; the context managers shut browser and server down)."""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.store import Workspace
from core.store.files import file_sha256
from tests.support.browser import offline_browser, open_popover, streamlit_server
from tests.support.server_proc import proc_figures, server_pid

MAX_SESSIONS = 16
MIN_SIDE, MAX_SIDE = 320, 1024  #: uploads are AIDER photos of one tile each, so the run stays bounded
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'
ERROR_TEXTS = ("Traceback", "StreamlitAPIException")
ANALYSE = re.compile(r"Analyse 1 image$")


class DeadlineExceeded(RuntimeError):
    """The whole run went past its deadline."""


@dataclass(frozen=True)
class SessionPlan:
    """What one browser session does: who it is, its case and the image it uploads."""

    index: int
    analyst: str
    case_name: str
    image: Path

    @property
    def upload_name(self) -> str:
        """The name the upload (and so the analysis input and its scene) gets."""
        return self.image.name


@dataclass
class SessionSeen:
    """What one session's page showed once its result was drawn (or why it never was)."""

    index: int
    t_click: float = 0.0
    t_result: float | None = None
    case_shown: str = ""
    analysis_shown: str = ""
    image_shown: str = ""
    score_shown: str = ""
    analyst_shown: str = ""
    text: str = ""  #: visible text plus every input's value
    errors: list[str] = field(default_factory=list)
    failure: str | None = None

    @property
    def seconds_to_result(self) -> float | None:
        """Seconds from the click on "Analyse" to the result on the page."""
        return None if self.t_result is None else self.t_result - self.t_click


@dataclass
class Verdict:
    """Outcome of :func:`verify`: every problem, the sessions that failed and those with mixed-up results."""

    problems: list[str]
    failed: list[int]
    mixed: list[int]


class Deadline:
    """One deadline for the whole run; every wait takes its timeout from it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def ms(self, cap_s: float) -> float:
        """Timeout in ms for the next wait: at most ``cap_s``, never past the deadline (raises once it passed)."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the load test ran past its deadline")
        return 1000.0 * min(cap_s, left)


def pick_images(data_root: Path, n: int) -> list[Path]:
    """``n`` different AIDER photos of one tile each: fire and flood alternately, in name order."""
    from PIL import Image

    pools: list[list[Path]] = []
    for folder in (data_root / "aider" / "fire", data_root / "aider" / "flooded_areas"):
        if not folder.is_dir():
            raise FileNotFoundError(f"AIDER folder missing: {folder} (see ../shared/data/README.md)")
        pool: list[Path] = []
        for p in sorted(folder.glob("*.jpg")):
            if len(pool) >= (n + 1) // 2:
                break
            with Image.open(p) as im:
                if MIN_SIDE <= min(im.size) and max(im.size) <= MAX_SIDE:
                    pool.append(p)
        pools.append(pool)
    picked = [pools[k % 2][k // 2] for k in range(n) if k // 2 < len(pools[k % 2])]
    if len(picked) < n:
        raise FileNotFoundError(f"only {len(picked)} suitable AIDER photos under {data_root}, {n} needed")
    return picked


def make_plans(images: list[Path]) -> list[SessionPlan]:
    """One plan per image: analyst "Analyst <k>", case "Load case <k>"."""
    return [SessionPlan(k, f"Analyst {k:02d}", f"Load case {k:02d}", img) for k, img in enumerate(images)]


# -- verification (pure: what the pages showed + what the workspace recorded) -------------------------------------
def verify(plans: list[SessionPlan], seen: list[SessionSeen], ws: Workspace) -> Verdict:
    """Check every session's page against the workspace (rules: see the module docstring)."""
    problems: list[str] = []
    failed: set[int] = set()
    mixed: set[int] = set()

    def bad(k: int, msg: str, *, mixup: bool) -> None:
        problems.append(f"session {k}: {msg}")
        (mixed if mixup else failed).add(k)

    owner_of = {file_sha256(p.image): p.index for p in plans}
    cases = {c["id"]: c["name"] for c in ws.list_cases()}
    analyses = ws.list_analyses()
    if len(analyses) != len(plans):
        problems.append(f"workspace has {len(analyses)} analyses, expected {len(plans)} (one per session)")
    for a in analyses:  # each holds exactly one input: the very file one session uploaded into its own case
        inputs = ws.analysis_inputs(a["id"])
        if len(inputs) != 1:
            problems.append(f"analysis #{a['id']} has {len(inputs)} inputs, expected exactly 1")
            continue
        path, name = Path(inputs[0]["path"]), inputs[0]["name"]
        k = owner_of.get(file_sha256(path)) if path.is_file() else None
        if k is None:
            problems.append(f"analysis #{a['id']}: its input {path} is none of the uploaded images")
        elif cases.get(a["case_id"]) != plans[k].case_name or name != plans[k].upload_name:
            bad(k, f"its image went into analysis #{a['id']} of case {cases.get(a['case_id'])!r} as {name!r}",
                mixup=True)

    by_index = {s.index: s for s in seen}
    for p in plans:
        s = by_index.get(p.index)
        if s is None or s.failure is not None or s.t_result is None:
            bad(p.index, f"no result: {s.failure if s else 'never ran'}", mixup=False)
            continue
        for err in s.errors:
            bad(p.index, f"error on the page: {err[:300]}", mixup=False)
        if s.analyst_shown != p.analyst:
            bad(p.index, f"analyst field shows {s.analyst_shown!r}, not {p.analyst!r}", mixup=True)
        if not s.case_shown.startswith(p.case_name + " "):
            bad(p.index, f"case shown is {s.case_shown!r}, not {p.case_name!r}", mixup=True)
        for q in plans:
            if q.index != p.index and (q.upload_name in s.text or q.case_name in s.text):
                bad(p.index, f"its page names session {q.index}'s image or case", mixup=True)
        mine = [cid for cid, name in cases.items() if name == p.case_name]
        own = ws.list_analyses(mine[0]) if len(mine) == 1 else []
        if len(own) != 1:
            bad(p.index, f"{len(mine)} cases named {p.case_name!r} with {len(own)} analyses, expected 1 and 1",
                mixup=False)
            continue
        a = own[0]
        results = ws.scene_results(a["id"])
        if a["status"] != "done" or len(results) != 1 or results[0].error:
            bad(p.index, f"analysis #{a['id']} is {a['status']} with {len(results)} results", mixup=False)
            continue
        r = results[0]
        if r.scene_name != p.upload_name:
            bad(p.index, f"analysis #{a['id']} holds {r.scene_name!r}, not {p.upload_name!r}", mixup=True)
        if not s.analysis_shown.startswith(f"#{a['id']} "):
            bad(p.index, f"page shows analysis {s.analysis_shown[:40]!r}, its own is #{a['id']}", mixup=True)
        if s.image_shown != p.upload_name:
            bad(p.index, f"page shows image {s.image_shown!r}, not {p.upload_name!r}", mixup=True)
        if s.score_shown != f"{r.image_score:.2f}":
            bad(p.index, f"page shows image score {s.score_shown!r}, the workspace recorded {r.image_score:.2f}",
                mixup=True)
    return Verdict(problems, sorted(failed - mixed), sorted(mixed))


# -- driving the pages ----------------------------------------------------------------------------------------------
def _page_errors(page: Any) -> list[str]:
    body = page.inner_text("body")
    return page.locator(ERROR_SELECTOR).all_inner_texts() + [f"{t!r} in the page" for t in ERROR_TEXTS if t in body]


def _selectbox(page: Any, label: str) -> str:
    """Value a Streamlit selectbox shows (kept in its combobox input; '' when there is no such selectbox)."""
    box = page.locator(f'input[role="combobox"][aria-label="{label}"]')
    return box.first.input_value() if box.count() else ""


def prepare(page: Any, plan: SessionPlan, dl: Deadline) -> None:
    """Analyst name, own case, upload: leaves the page showing its "Analyse 1 image" button."""
    page.get_by_text("Images", exact=True).first.wait_for(timeout=dl.ms(120))
    page.get_by_label("Analyst").fill(plan.analyst)
    page.get_by_label("Analyst").press("Enter")
    open_popover(page, "New case", page.get_by_label("Case name"), timeout_ms=dl.ms(120)).fill(plan.case_name)
    page.get_by_role("button", name="Create case").click(timeout=dl.ms(60))
    page.wait_for_function(
        "([label, prefix]) => [...document.querySelectorAll('input[role=combobox]')]"
        ".some(e => e.getAttribute('aria-label') === label && e.value.startsWith(prefix))",
        arg=["Case", plan.case_name + " (#"], timeout=dl.ms(120))
    page.keyboard.press("Escape")  # close the popover if it stayed open
    page.locator("input[type=file]").first.set_input_files(str(plan.image))
    page.get_by_role("button", name=ANALYSE).wait_for(timeout=dl.ms(120))


def capture(page: Any, seen: SessionSeen, dl: Deadline) -> None:
    """Read what the page shows once the script run that drew the result has ended."""
    page.get_by_text(re.compile("^heatmap: grey below")).first.wait_for(timeout=dl.ms(120))
    while page.locator('[data-testid="stStatusWidget"]').count():  # "Running…" until the script run ends
        dl.ms(1)
        page.wait_for_timeout(200)
    seen.case_shown = _selectbox(page, "Case")
    seen.analysis_shown = _selectbox(page, "Analysis")
    seen.image_shown = _selectbox(page, "Image")
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Image score").first
    seen.score_shown = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
    seen.analyst_shown = page.get_by_label("Analyst").input_value()
    values = page.locator("input, textarea").evaluate_all("els => els.map(e => e.value)")
    seen.text = page.inner_text("body") + "\n" + "\n".join(v for v in values if v)
    seen.errors = _page_errors(page)


def drive(url: str, plans: list[SessionPlan], seen: list[SessionSeen], dl: Deadline, shots: Path | None,
          blocked_out: list[str], server_before: dict[str, float]) -> None:
    """Open one tab per plan, prepare them all, click "Analyse" in every tab back to back, wait for every result.

    Fills ``seen`` (what each page showed), ``blocked_out`` (non-loopback urls the browser was kept from) and
    ``server_before`` (server figures just before the clicks), also when it stops on an error.
    """
    with offline_browser(viewport=(1280, 900)) as (first, blocked):
        pages = [first] + [first.context.new_page() for _ in plans[1:]]
        try:
            for page in pages:  # every session connects at once (a session's first run opens the workspace)
                page.goto(url, wait_until="commit", timeout=dl.ms(60))
            for page, plan in zip(pages, plans, strict=True):
                prepare(page, plan, dl)
            server_before.update(proc_figures(server_pid(url)))
            for page, s in zip(pages, seen, strict=True):
                s.t_click = time.monotonic()
                page.get_by_role("button", name=ANALYSE).click(timeout=dl.ms(30))
            pending = dict(enumerate(pages))
            while pending:
                dl.ms(1)
                for k, page in list(pending.items()):
                    if page.locator('[data-testid="stMetricLabel"]', has_text="Image score").count():
                        seen[k].t_result = time.monotonic()
                        del pending[k]
                    elif page.locator(ERROR_SELECTOR).count():
                        seen[k].failure = "; ".join(_page_errors(page))[:500] or "error on the page"
                        del pending[k]
                pages[0].wait_for_timeout(100)
            for page, s in zip(pages, seen, strict=True):
                if s.failure is None:
                    capture(page, s, dl)
        except Exception as exc:
            for s in seen:
                if s.t_result is None and s.failure is None:
                    s.failure = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            raise
        finally:
            blocked_out.extend(blocked)
            for k, page in enumerate(pages if shots is not None else []):
                try:
                    shots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shots / f"session_{k:02d}.png"), full_page=True, timeout=10_000)
                except Exception:  # noqa: BLE001 - a screenshot is a help for a person, never the result
                    pass


@dataclass
class LoadRun:
    """A finished load run: the plans, what every page showed, the workspace folder and the figures."""

    plans: list[SessionPlan]
    seen: list[SessionSeen]
    ws_root: Path
    report: dict[str, Any]


def _r1(x: float | None) -> float | None:
    return None if x is None or x != x else round(x, 1)


def run_load(n: int, timeout_s: float, data_root: Path, workdir: Path, *, threads: int = 1,
             model: Path | None = None, shots: Path | None = None) -> LoadRun:
    """Run the load test with ``n`` sessions within ``timeout_s`` seconds, the workspace under ``workdir``."""
    if not 1 <= n <= MAX_SESSIONS:
        raise ValueError(f"--sessions must be between 1 and {MAX_SESSIONS}, got {n}")
    plans = make_plans(pick_images(data_root, n))
    ws_root = workdir / "ws"
    ws_root.mkdir(parents=True, exist_ok=True)
    env = {"BDA_WORKSPACE": str(ws_root), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if model is not None:
        env["BDA_MODEL"] = str(model)
    dl = Deadline(timeout_s)
    t0 = time.monotonic()
    error, seen, blocked, before = None, [SessionSeen(p.index) for p in plans], [], {}
    with streamlit_server(env, timeout=dl.ms(120) / 1000) as url:
        try:
            drive(url, plans, seen, dl, shots, blocked, before)
        except Exception as exc:  # noqa: BLE001 - the run's error goes into the report; pages say what they saw
            error = f"{type(exc).__name__}: {exc}"
        after = proc_figures(server_pid(url))
    wall = time.monotonic() - t0
    ws = Workspace(ws_root)
    verdict = verify(plans, seen, ws)
    times = [t for s in seen if (t := s.seconds_to_result) is not None]
    done = [s.t_result for s in seen if s.t_result is not None]
    report = {
        "sessions": n, "ok": not verdict.problems and error is None and not blocked, "error": error,
        "wall_s": _r1(wall),
        "analyse_phase_s": _r1(max(done) - min(s.t_click for s in seen)) if done else None,
        "to_result_s": {"min": _r1(min(times)), "median": _r1(statistics.median(times)), "max": _r1(max(times))}
        if times else None,
        "per_session_s": [_r1(s.seconds_to_result) for s in seen],
        "failed": verdict.failed, "mixed_up": verdict.mixed, "problems": verdict.problems,
        "blocked_requests": blocked, "default_cases": [c["name"] for c in ws.list_cases()].count("Case 1"),
        "server_rss_before_mib": _r1(before.get("VmRSS")), "server_peak_rss_mib": _r1(after.get("VmHWM")),
        "server_cpu_s": _r1(after.get("cpu_s")), "images": [p.upload_name for p in plans],
    }
    return LoadRun(plans, seen, ws_root, report)
