"""A real two-node Ray cluster on loopback for tests: a head and a second node, each started with `ray start`.

Every process the cluster starts carries a marker in its environment, so :meth:`LoopbackCluster.stop` can prove
that none is left (and end any straggler by its pid). Only processes this cluster started are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.data import REPO

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def marked_pids(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (``NAME=VALUE``)."""
    key = marker.encode()
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if key in (d / "environ").read_bytes().split(b"\0"):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def cmdline(pid: int) -> str:
    """A process' command line ('' once it is gone)."""
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class LoopbackCluster:
    """``with LoopbackCluster(tmp) as c: ... c.address ...``: head + one worker node, 1 CPU each, no dashboard."""

    def __init__(self, tmp: Path, cpus_per_node: int = 1) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.marker_value = uuid.uuid4().hex
        self.marker = f"BDA_TEST_RAY_CLUSTER={self.marker_value}"
        self.cpus = cpus_per_node
        self.env = {**os.environ, "BDA_TEST_RAY_CLUSTER": self.marker_value, "RAY_AUTH_MODE": "disabled",
                    "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="bdaray"))  # short: Ray's socket paths must stay < 108 bytes

    def _start(self, args: list[str], log: str) -> None:
        with open(self.tmp / log, "wb") as f:
            cmd = [str(RAY), "start", "--block", f"--num-cpus={self.cpus}", "--num-gpus=0",
                   "--node-ip-address=127.0.0.1", f"--object-store-memory={200 * 1024 * 1024}", *args]
            self.procs.append(subprocess.Popen(cmd,
                                               env=self.env, stdout=f, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def _nodes_alive(self) -> int:
        out = subprocess.run([str(RAY), "status", f"--address={self.address}"], env=self.env, capture_output=True,
                             text=True, timeout=60)
        return out.stdout.count(" node_") if out.returncode == 0 else 0

    def start(self, timeout: float = 180) -> LoopbackCluster:
        """Start the head, then the second node, and wait until both are in the cluster."""
        self._start(["--head", f"--port={self.port}", "--include-dashboard=false",
                     f"--temp-dir={self.ray_tmp}", "--disable-usage-stats"], "head.log")
        deadline = time.monotonic() + timeout
        while self._nodes_alive() < 1:
            self._check(deadline, "head.log")
        self._start([f"--address={self.address}"], "node.log")
        while self._nodes_alive() < 2:
            self._check(deadline, "node.log")
        return self

    def _check(self, deadline: float, log: str) -> None:
        if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
            text = (self.tmp / log).read_text(errors="replace")[-3000:]
            self.stop()
            raise RuntimeError(f"the loopback Ray cluster did not start:\n{text}")
        time.sleep(1)

    def worker_pids(self, name: str = "MapWorker") -> list[int]:
        """Ray worker processes of this cluster whose title names ``name`` (Ray Data's model workers)."""
        return [p for p in marked_pids(self.marker) if cmdline(p).startswith(f"ray::{name}")]

    def stop(self, grace: float = 5.0) -> list[int]:
        """Stop the second node, then the head: SIGTERM to each node's process group (its `ray start` and what that
        started), SIGKILL to the group when it has not exited within ``grace`` seconds (the head's GCS server
        takes ~30 s to exit on SIGTERM, a third of the Ray tests' time, and nothing of a test cluster needs keeping).
        Then end any process of this cluster still running; returns the pids that had to be ended that way."""
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        deadline = time.monotonic() + 20
        while marked_pids(self.marker) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = marked_pids(self.marker)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.ray_tmp, ignore_errors=True)
        return left

    def __enter__(self) -> LoopbackCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
