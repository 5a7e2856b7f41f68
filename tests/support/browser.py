"""Real-browser test support: a `streamlit run` server on a loopback port and Debian's chromium via Playwright.

Every request that does not go to the loopback server is aborted and recorded, so a test proves the app works with
the network cut (no CDN, no tile server).
"""

from __future__ import annotations

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
from pathlib import Path
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
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited early:\n{log.read_text(errors='replace')[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("streamlit did not become healthy in time")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def need_chromium() -> str:
    """Path of Debian's chromium, or skip with the reason."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does this)")
    return CHROMIUM


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
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)

        def guard(route) -> None:
            url = route.request.url
            host = urlparse(url).hostname or ""
            if url.startswith(("data:", "blob:", "about:")) or host in LOOPBACK:
                route.continue_()
            else:
                blocked.append(url)
                route.abort()

        context.route("**/*", guard)
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
def screenshot_on_failure(page, path: Path) -> Iterator[None]:
    """Save a full-page screenshot at ``path`` when the block raises (then let the error through)."""
    try:
        yield
    except Exception:
        page.screenshot(path=str(path), full_page=True)
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
    page.wait_for_load_state("networkidle")


def no_exception(page) -> None:
    """Assert that the page shows no traceback or Streamlit API error."""
    body = page.inner_text("body")
    assert "Traceback" not in body and "StreamlitAPIException" not in body, body[-2000:]


def upload_and_analyse(page, image: Path, timeout_ms: int = 240_000, shown: str = r"^heatmap: grey below") -> None:
    """Upload one post-event image on the Analyze page, analyse it and wait until the caption ``shown`` (a regex:
    by default the post image's own heatmap) is on the page."""
    page.locator("input[type=file]").nth(0).set_input_files(str(image))
    run = page.get_by_role("button", name=re.compile(r"Analyse 1 image"))
    run.wait_for(timeout=60_000)
    run.click()
    page.get_by_text(re.compile(shown)).first.wait_for(timeout=timeout_ms)
    page.wait_for_load_state("networkidle")
    no_exception(page)
