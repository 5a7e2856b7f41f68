"""The ``streamlit run`` server a benchmark started: its pid, memory and CPU seconds (read from /proc)."""

from __future__ import annotations

import os
from pathlib import Path


def server_pid(url: str) -> int | None:
    """Pid of the ``streamlit run`` child of this process that serves ``url`` (None when not found)."""
    port = url.rsplit(":", 1)[-1].encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"streamlit" in b" ".join(cmd) and port in cmd:
            return int(d.name)
    return None


def proc_figures(pid: int | None) -> dict[str, float]:
    """Current and peak RSS (``VmRSS``, ``VmHWM`` in MiB) and CPU seconds of a process (empty when unreadable)."""
    out: dict[str, float] = {}
    if pid is None:
        return out
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, val = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(val.split()[0]) / 1024.0
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu_s"] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
    return out
