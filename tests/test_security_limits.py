"""Limits on what a user hands in (issue 12, findings 6-8): archives refused before the disk fills, checkpoints
with non-finite numbers refused, rasters over the pixel cap refused from their header."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

import core.safety
from core.errors import InputError, TrainingDataError
from core.safety import safe_extract_zip
from core.store import Workspace


# -- 6: archives -------------------------------------------------------------------------------------------------
def test_a_case_archive_bomb_is_refused_before_a_byte_is_written(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "case.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b'{"format": "bda-workbench-case"}')
        zf.writestr("files/analyses/1/heat.tif", bytes(40_000_000))  # ~1000x: one deflate member at its maximum
    assert bomb.stat().st_size < 100_000

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the archive was being extracted")

    monkeypatch.setattr(core.safety, "_extract", never)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(InputError, match="zip bomb"):
        ws.import_case(bomb)
    assert ws.list_cases() == [] and not any((ws.root / "tmp").iterdir())


def test_one_member_over_its_cap_is_refused(tmp_path: Path) -> None:
    z = tmp_path / "z.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("small.bin", os.urandom(1000))
        zf.writestr("big.bin", os.urandom(2_000_000))
    with pytest.raises(TrainingDataError, match="limit per file"):
        safe_extract_zip(z, tmp_path / "d", max_member_bytes=1e6)
    assert not (tmp_path / "d").exists()
    assert len(safe_extract_zip(z, tmp_path / "ok", max_member_bytes=3e6)) == 2


def test_extraction_leaves_a_reserve_of_free_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = tmp_path / "z.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.bin", os.urandom(3_000_000))
    disk = 100e9
    usage = type(shutil.disk_usage(tmp_path))
    monkeypatch.setattr(core.safety.shutil, "disk_usage", lambda p: usage(int(disk), int(disk - 5e6), int(5e6)))
    with pytest.raises(TrainingDataError, match="must stay free"):  # 3 MB fit in 5 MB, but the disk would be full
        safe_extract_zip(z, tmp_path / "d")
    assert not (tmp_path / "d").exists()
