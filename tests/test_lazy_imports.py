"""An analysis pays only for what it uses: no report/PDF stack, no torchvision (which drags in torch._dynamo, sympy
and triton), no Ray with the local engine, checked in a fresh interpreter after a real `python -m core analyze` run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("matplotlib", "fpdf", "torchvision", "torch._dynamo", "sympy", "triton", "streamlit", "folium",
         "ray")  # the local engine (the default) never imports Ray

_PROBE = """
import json, sys
from core.cli.main import main
rc = main(sys.argv[1:])
heavy = sorted(m for m in %r if m in sys.modules)
import core.report as r
before = "matplotlib" in sys.modules
r.write_pdf  # the report's names still import on demand
print(json.dumps({"rc": rc, "heavy": heavy, "pdf": [before, "matplotlib" in sys.modules], "formats": bool(r.FORMATS)}))
"""


@pytest.mark.slow  # a fresh interpreter runs the bundled default model: the fast lane's longest test (~6 s)
def test_cli_analyze_loads_no_report_pdf_or_torchvision_modules(tmp_path):
    """One fresh interpreter: a real analysis loads none of HEAVY, and afterwards the report's names still import
    on demand (``core.report.write_pdf`` brings matplotlib in only when asked for)."""
    img = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(img)
    out = subprocess.run([sys.executable, "-c", _PROBE % (HEAVY,), "analyze", str(img), "--out", str(tmp_path / "o"),
                          "--no-workspace", "--quiet", "--device", "cpu"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"rc": 0, "heavy": [], "pdf": [False, True], "formats": True}
    assert (tmp_path / "o" / "findings.csv").is_file() and (tmp_path / "o" / "frame_heatmap.tif").is_file()


@pytest.mark.slow  # a fresh interpreter imports torch (~2 s)
def test_training_code_does_not_import_torchvision():
    """`python -m core train` and the Models page's training jobs record torchvision's version from its package
    metadata: importing it (to read ``__version__``) cost ~2 CPU-s of torch._dynamo on every start."""
    probe = ("import sys, core.learn.training as t; print(sorted(m for m in ('torchvision', 'torch._dynamo') "
             "if m in sys.modules), t._version('torchvision'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded, version = out.stdout.split("]")
    assert loaded == "[" and version.strip()[0].isdigit()
