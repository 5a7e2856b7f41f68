"""Real-browser test support: a `streamlit run` server on a loopback port and Debian's chromium via Playwright.

Every request that does not go to the loopback server is aborted and recorded, so a test proves the app works with
the network cut (no CDN, no tile server).
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.support.data import REPO

CHROMIUM = os.environ.get("BDA_CHROMIUM", "/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout: float, poll: float = 0.5) -> None:
    """Wait until the streamlit server ``proc`` at ``url`` answers its health check; raise with the tail of its
    ``log`` when it exits first, or when ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"streamlit did not answer its health check within {timeout:.0f} s")
        time.sleep(poll)


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server process: terminate, and kill it if it has not exited within 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def streamlit_server(env: dict[str, str], timeout: float = 120.0) -> Iterator[str]:
    """Run ``streamlit run app.py`` on a free loopback port; yield its base URL; stop it afterwards."""
    port = free_port()
    log = Path(env.get("BDA_WORKSPACE", "/tmp")) / "streamlit.log"
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(proc, url, log, timeout)
            yield url
        finally:
            stop_server(proc)


def need_chromium() -> str:
    """Path of Debian's chromium, or skip with the reason."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does this)")
    return CHROMIUM


def offline_context(browser: Any, blocked: list[str], viewport: tuple[int, int] = (1400, 1000)) -> Any:
    """A new context of ``browser`` (its own cookies and storage: another person's browser session) whose
    non-loopback requests are aborted and appended to ``blocked``."""

    def guard(route) -> None:
        url = route.request.url
        host = urlparse(url).hostname or ""
        if url.startswith(("data:", "blob:", "about:")) or host in LOOPBACK:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
    context.route("**/*", guard)
    return context


@contextlib.contextmanager
def offline_browser(viewport: tuple[int, int] = (1400, 1000)):
    """A Playwright chromium page whose non-loopback requests are aborted; yields (page, blocked_urls)."""
    from playwright.sync_api import sync_playwright

    exe = need_chromium()
    blocked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"])
        context = offline_context(browser, blocked, viewport)
        page = context.new_page()
        try:
            yield page, blocked
        finally:
            context.close()
            browser.close()


def folium_frame(page, timeout_s: float = 60.0):
    """The frame holding the streamlit-folium Leaflet map, once it has rendered (asserts that it does)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = next((f for f in page.frames if f.locator(".leaflet-container").count()), None)
        if frame is not None:
            return frame
        page.wait_for_timeout(500)
    raise AssertionError("the folium map did not render")


@contextlib.contextmanager
def screenshot_on_failure(page, path: Path, full_page: bool = True) -> Iterator[None]:
    """Save a screenshot at ``path`` when the block raises, then let the block's own error through (a screenshot that
    fails itself, e.g. on a page too busy to draw, is given up after 30 s and never hides that error)."""
    try:
        yield
    except Exception:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(path), full_page=full_page, timeout=30_000)
        raise


def artifacts_dir() -> Path:
    """Folder of the browser tests' screenshots: $BDA_ARTIFACTS/e2e, else artifacts/e2e in the repository."""
    out = Path(os.environ.get("BDA_ARTIFACTS", REPO / "artifacts")) / "e2e"
    out.mkdir(parents=True, exist_ok=True)
    return out


def model_for(tiny_model: Path) -> Path:
    """The bundled fast model (FCDD ResNet-18) when present, else the tests' tiny model: the browser tests check the
    workflow, not the detector, so they use the fastest real model."""
    bundled = REPO / "assets/models/fcdd-resnet18.pt"
    return bundled if bundled.is_file() else tiny_model


def nav(page, title: str) -> None:
    """Go to a page by its menu link and wait until it has loaded."""
    page.get_by_role("link", name=title).first.click()
    wait_drawn(page)


def login(page, name: str, password: str) -> None:
    """Fill the login form and press "Log in" (the caller waits for what the login should show)."""
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def no_exception(page) -> None:
    """Assert that the page shows no traceback or Streamlit API error."""
    body = page.inner_text("body")
    assert "Traceback" not in body and "StreamlitAPIException" not in body, body[-2000:]


def wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the app's script is not running: Streamlit's status widget (its "Running..." and "Stop") is drawn
    only while a run is in progress. (Matching the widget's text missed runs: it can read just "Stop".)"""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def wait_drawn(page, timeout_ms: int = 120_000) -> None:
    """:func:`wait_idle`, then wait until no element of the previous script run is left in the page: until a run has
    drawn over them, Streamlit keeps the last run's elements (``data-stale="true"``, greyed out), so right after a
    widget change the old form can still be there to click, and a click on it is lost."""
    wait_idle(page, timeout_ms)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stElementContainer\"][data-stale=\"true\"]')",
                           timeout=timeout_ms)


def settled(page, timeout_ms: int = 60_000) -> None:
    """:func:`wait_drawn`, then wait until no finite CSS animation or transition is running (an expander opening,
    a scroll, a fading toast): the condition a screenshot or a look at the page waits for, instead of a fixed
    sleep. Endless animations (spinners) do not count."""
    wait_drawn(page, timeout_ms)
    page.wait_for_function(
        "() => document.getAnimations().every(a => a.playState !== 'running'"
        " || (a.effect && a.effect.getComputedTiming().iterations === Infinity))", timeout=timeout_ms)


def open_popover(page, button: str | re.Pattern[str], inside: Any, timeout_ms: int = 120_000,
                 try_ms: int = 5_000) -> Any:
    """Open the popover whose button is named ``button`` and return ``inside`` (a locator of something the popover
    holds, e.g. ``page.get_by_label("Case name")``) once it is visible.

    A popover clicked open while a script run is redrawing the sidebar can be drawn closed again by that run (a CI
    run's load test: "Case name" never appeared after "New case" was clicked during the run the analyst's name had
    started). So: wait until the page is drawn, click only while ``inside`` is not shown (a click on an open popover's
    button closes it), and click again when it does not show within ``try_ms``, until ``timeout_ms``.
    """
    end = time.monotonic() + timeout_ms / 1000
    clicks = 0
    while True:
        left_ms = max(1, int((end - time.monotonic()) * 1000))
        wait_drawn(page, left_ms)
        if not inside.first.is_visible():
            page.get_by_role("button", name=button).first.click(timeout=left_ms)
            clicks += 1
        try:
            inside.first.wait_for(state="visible", timeout=min(try_ms, left_ms))
            return inside
        except Exception as exc:  # playwright's TimeoutError
            if time.monotonic() >= end:
                sidebar = page.locator('[data-testid="stSidebar"]').inner_text(timeout=5_000)[-600:]
                raise AssertionError(f"{inside} not shown after {clicks} clicks on {button!r} in "
                                     f"{timeout_ms / 1000:g} s; the sidebar reads: {sidebar!r}") from exc


def until(page, check: Any, what: str, timeout_s: float = 180.0, poll_ms: int = 250) -> None:
    """Poll ``check()`` (e.g. the workspace holds a saved review) until it is true, letting the page run
    meanwhile; then :func:`wait_drawn`. Raises AssertionError naming ``what`` after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        page.wait_for_timeout(poll_ms)
    wait_drawn(page)


def upload(page, index: int, *paths: Path, scope: Any = None, tries: int = 2, timeout_ms: int = 90_000) -> None:
    """Give the ``index``-th file input (in ``scope``, default the page's main area) ``paths`` and wait until the
    page shows their names.

    On a busy machine a rerun can redraw the uploader between locating its input and setting the files, and the files
    are then set on a detached element and lost (seen as an Analyze page with nothing staged): the upload is retried
    when the names do not appear. The staged list is drawn once the model has loaded (in the background after a
    fresh server's first page), so each try waits up to ``timeout_ms``.
    """
    # the page's own uploaders: the sidebar's case-import uploader is an input[type=file] too, before them in the DOM
    root = scope if scope is not None else page.locator('[data-testid="stMain"]')
    for attempt in range(tries):
        wait_idle(page)
        field = root.locator("input[type=file]").nth(index)
        field.set_input_files([str(p) for p in paths])
        try:
            # listed by the uploader, or staged by the page (pre-event images are taken away): the staged list is a
            # data grid drawn on a canvas, whose cells' text is in the DOM but hidden, so "attached", not "visible"
            for p in paths:
                page.get_by_text(Path(p).name, exact=False).first.wait_for(state="attached", timeout=timeout_ms)
            return
        except Exception as exc:
            if attempt == tries - 1:
                state = page.evaluate("""() => ({
                    uploaders: [...document.querySelectorAll('[data-testid="stFileUploader"]')].map(u => u.innerText),
                    running: !!document.querySelector('[data-testid="stStatusWidget"]'),
                    stale: document.querySelectorAll('[data-stale="true"]').length,
                    alerts: [...document.querySelectorAll('[data-testid="stAlert"]')].map(a => a.innerText)})""")
                with contextlib.suppress(Exception):  # the input as it is now (it may have been redrawn)
                    state["input"] = field.evaluate("el => ({files: el.files.length, disabled: el.disabled, "
                                                    "connected: el.isConnected})", timeout=5_000)
                raise AssertionError(f"{[Path(p).name for p in paths]} not staged after {tries} tries; the page: "
                                     f"{state}") from exc


def upload_and_analyse(page, image: Path, timeout_ms: int = 240_000, shown: str = r"^heatmap: grey below") -> None:
    """Upload one post-event image on the Analyze page, analyse it and wait until the caption ``shown`` (a regex:
    by default the post image's own heatmap) is on the page."""
    upload(page, 0, image)
    run = page.get_by_role("button", name=re.compile(r"Analyse 1 image"))
    run.wait_for(timeout=60_000)
    run.click()
    page.get_by_text(re.compile(shown)).first.wait_for(timeout=timeout_ms)
    wait_drawn(page)
    no_exception(page)


def fast_model() -> Path:
    """The bundled fast model (FCDD ResNet-18), or skip with the reason: for the browser tests that need a real model's
    findings and grades (they check the workflow, not the detector)."""
    from core.assets import FAST_MODEL

    if not FAST_MODEL.is_file():
        pytest.skip(f"bundled default model missing: {FAST_MODEL}")
    return FAST_MODEL


@dataclass
class OfflineApp:
    """The app as a browser test drives it: its URL, the chromium page, the requests the guard aborted, the
    workspace it runs on and the folder screenshots go to."""

    url: str
    page: Any  #: playwright.sync_api.Page
    blocked: list[str]
    workspace: Path
    art: Path

    def another_session(self) -> Any:
        """A page in a new browser context: a second person on the same server (own cookies, own Streamlit
        session), with the same network guard (its blocked requests count for this app too)."""
        return offline_context(self.page.context.browser, self.blocked).new_page()

    def home(self) -> None:
        """Open the app (the Analyze page) and wait until it has drawn its uploaders."""
        self.page.goto(self.url)
        self.page.get_by_text("Images", exact=True).first.wait_for(timeout=60_000)


def record_network(page: Any, lines: collections.deque[str]) -> None:
    """Append to ``lines`` one line per websocket frame (direction, size, the frame's readable text: Streamlit's
    protobuf messages carry their widget ids, file names and upload URLs as plain strings) and per upload request
    and response: what a lost upload needs (was the file-URL request sent, answered, the file PUT?)."""
    def now() -> str:
        return time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"

    def frame(direction: str, payload: Any) -> None:
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        text = re.sub(rb"[^ -~]+", b" ", data[:4000]).decode("ascii")
        lines.append(f"{now()} ws {direction} {len(data)} B: {' '.join(text.split())[:300]}")

    def on_ws(ws: Any) -> None:
        lines.append(f"{now()} ws open {ws.url}")
        ws.on("framesent", lambda p: frame("sent", p))
        ws.on("framereceived", lambda p: frame("received", p))
        ws.on("close", lambda _ws: lines.append(f"{now()} ws closed"))

    def is_upload(url: str) -> bool:
        return "/_stcore/upload_file" in url

    page.on("websocket", on_ws)
    page.on("request", lambda r: is_upload(r.url) and lines.append(f"{now()} http {r.method} {r.url}"))
    page.on("response", lambda r: is_upload(r.url) and lines.append(f"{now()} http {r.status} {r.url}"))
    page.on("requestfailed", lambda r: is_upload(r.url) and lines.append(
        f"{now()} http failed {r.url}: {r.failure}"))


@contextlib.contextmanager
def offline_app(workspace: Path, model: Path | str, failure_shot: str, *, env: dict[str, str] | None = None,
                full_page: bool = True) -> Iterator[OfflineApp]:
    """What every end-to-end test sets up: ``streamlit run`` on ``workspace`` (made if missing) with ``model`` as
    ``BDA_MODEL`` ("" for none) and 2 OpenMP threads, plus ``env``; Debian's chromium with every non-loopback
    request aborted. A failure inside the block leaves the screenshot ``failure_shot`` in :func:`artifacts_dir`;
    once the block is through, no request may have left the machine."""
    workspace.mkdir(parents=True, exist_ok=True)
    art = artifacts_dir()
    server_env = {"BDA_WORKSPACE": str(workspace), "BDA_MODEL": str(model), "OMP_NUM_THREADS": "2",
                  "BDA_LOG_LEVEL": "INFO", **(env or {})}
    console: collections.deque[str] = collections.deque(maxlen=400)  # the page's last console lines
    network: collections.deque[str] = collections.deque(maxlen=400)  # the last websocket frames and uploads
    with streamlit_server(server_env) as url, offline_browser() as (page, blocked):
        page.on("console", lambda m: console.append(f"{time.strftime('%H:%M:%S')} {m.type}: {m.text}"[:500]))
        record_network(page, network)
        try:
            with screenshot_on_failure(page, art / failure_shot, full_page=full_page):
                yield OfflineApp(url, page, blocked, workspace, art)
        except Exception:  # what the server, the page and the wire said, beside the screenshot
            stem = Path(failure_shot).stem
            for name, text in (("console", "\n".join(console)), ("network", "\n".join(network))):
                with contextlib.suppress(OSError):
                    (art / f"{stem}_{name}.log").write_text(text, encoding="utf-8")
            with contextlib.suppress(OSError):
                shutil.copyfile(workspace / "streamlit.log", art / f"{stem}_server.log")
            raise
        assert not blocked, f"the app reached outside the machine: {blocked[:5]}"
