"""Names people see and the workspace stores (issue 12, finding 9): control characters and bidirectional
overrides never reach a page, a report or the database, and one bad name never loses the others."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputError
from core.file_names import clean_name
from core.store import Workspace
from tests.support.store import make_result

RLO = "\u202e"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_clean_name_properties(text: str) -> None:
    out = clean_name(text)
    assert out and len(out) <= 200 and out == out.strip()
    assert not any(ord(c) < 32 or ord(c) == 127 or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                   for c in out)
    assert clean_name(out) == out
    out.encode("utf-8")  # storable


@pytest.mark.parametrize(("name", "want"), [
    ("bad\x00name.png", "bad name.png"),
    (f"evil{RLO}gnp.exe", "evilgnp.exe"),
    ("서울\u200b 사진\ufeff.jpg", "서울 사진.jpg"),
    ("line\u2028break\r\n.tif", "line break .tif"),
    ("\x00\x01", "file"),
])
def test_clean_name_examples(name: str, want: str) -> None:
    assert clean_name(name) == want


def test_stored_names_are_cleaned(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    cid = ws.create_case(f"Joplin{RLO}\x00 2011")
    assert ws.get_case(cid)["name"] == "Joplin 2011"
    aid = ws.create_analysis(cid, [{"path": "/data/a.tif", "name": f"a{RLO}\x00.tif"}, {"path": "/data/b.tif"}],
                             model={"name": "m"}, threshold=None, options={})
    assert [i["name"] for i in ws.analysis_inputs(aid)] == ["a .tif", "b.tif"]
    r = make_result(f"a{RLO}\x00.tif")  # the run saves under the name it was given: it still finds its input
    ws.save_scene_result(aid, r, input_name=f"a{RLO}\x00.tif")
    (saved,) = ws.scene_results(aid)
    assert saved.scene_name == "a .tif"
    f = ws.review_finding(saved.findings[0].id, analyst=f"kim{RLO}\x00", status="rejected")
    assert f.analyst == "kim"
    with pytest.raises(InputError, match="must not be empty"):
        ws.review_finding(saved.findings[0].id, analyst="\x00\u202e", status="confirmed")
