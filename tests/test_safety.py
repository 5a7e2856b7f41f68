"""Safe names and safe extraction: nothing a user hands in can write outside its folder or fill the disk."""

from __future__ import annotations

import os
import re
import stat
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputError, TrainingDataError
from core.file_names import safe_filename, unique_name
from core.zip_extract import safe_extract_zip

SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


# -- names -------------------------------------------------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["file", "", "../x", "scene"]))
def test_safe_filename_properties(name: str, default: str) -> None:
    out = safe_filename(name, default)
    assert SAFE.match(out), out
    assert 0 < len(out) <= 120
    assert ".." not in out and "/" not in out and "\\" not in out
    assert out.split(".")[0].lower() not in RESERVED
    assert safe_filename(out, default) == out  # already safe names pass through unchanged


@pytest.mark.parametrize(("name", "want"), [
    ("IMG_0001.JPG", "IMG_0001.JPG"),
    ("../../etc/passwd", "etc_passwd"),
    ("..\\..\\windows\\system32.dll", "windows_system32.dll"),
    ("/abs/path/post tile 3.tif", "abs_path_post_tile_3.tif"),
    ("서울 사진.jpg", "file.jpg"),
    ("Café déjà vu.png", "Cafe_deja_vu.png"),
    (".bashrc", "bashrc"),
    ("...", "file"),
    ("", "file"),
    ("a\x00b\nc\x1b.tif", "a_b_c.tif"),
    ("CON.txt", "_CON.txt"),
    ("report.tar.gz", "report.tar.gz"),
    ("<script>alert(1)</script>.html", "script_alert_1_script.html"),
])
def test_safe_filename_examples(name: str, want: str) -> None:
    assert safe_filename(name) == want


def test_safe_filename_keeps_extension_when_truncating() -> None:
    out = safe_filename("x" * 500 + ".geotiff")
    assert len(out) == 120 and out.endswith(".geotiff")
    assert safe_filename("", default="scene") == "scene"


def test_unique_name() -> None:
    assert unique_name("a.tif", set()) == "a.tif"
    assert unique_name("a.tif", {"A.TIF"}) == "a-2.tif"
    assert unique_name("a.tif", {"a.tif", "a-2.tif"}) == "a-3.tif"
    assert unique_name("noext", ["noext"]) == "noext-2"
    long = "y" * 118 + ".tif"
    assert len(unique_name(long, {long})) <= 120


# -- archives ------------------------------------------------------------------------------------------------------
def write_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], *,
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names on purpose
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")} if folder.exists() else set()


def test_extracts_a_normal_archive(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "ok.zip", [("normal/", b""), ("normal/a.jpg", b"A" * 10), ("normal/sub/b 서울.jpg", b"B"),
                                        ("anomalous/c.jpg", os.urandom(3000))])
    out = safe_extract_zip(z, tmp_path / "dest")
    assert [p.relative_to(tmp_path / "dest").as_posix() for p in out] == [
        "normal/a.jpg", "normal/sub/b 서울.jpg", "anomalous/c.jpg"]
    assert out[0].read_bytes() == b"A" * 10


def symlink_member(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(("member", "why"), [
    ("../evil.txt", "'..'"),
    ("ok/../../evil.txt", "'..'"),
    ("..\\evil.txt", "'..'"),
    ("/tmp/abs-evil.txt", "absolute"),
    ("C:\\Windows\\evil.txt", "absolute"),
    (symlink_member("link", "/etc/passwd"), "symbolic link"),
    ("bad\x01name.txt", "control characters"),
])
def test_zip_slip_is_refused_before_writing_anything(tmp_path: Path, member: str | zipfile.ZipInfo, why: str) -> None:
    dest = tmp_path / "box" / "dest"
    dest.mkdir(parents=True)
    z = write_zip(tmp_path / "slip.zip", [("fine.txt", b"ok"), (member, b"/etc/passwd")])
    with zipfile.ZipFile(z) as zf:  # the hostile name really is in the archive
        assert zf.namelist()[1] == (member.filename if isinstance(member, zipfile.ZipInfo) else member)
    before = tree(tmp_path)
    with pytest.raises(TrainingDataError, match=why):
        safe_extract_zip(z, dest)
    assert tree(tmp_path) == before
    assert not Path("/tmp/abs-evil.txt").exists()


def test_error_type_is_configurable(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "slip.zip", [("../evil", b"x")])
    with pytest.raises(InputError) as info:
        safe_extract_zip(z, tmp_path / "d", error_type=InputError)
    assert type(info.value) is InputError


def test_existing_symlink_in_dest_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    z = write_zip(tmp_path / "z.zip", [("sub/x.txt", b"x")])
    with pytest.raises(TrainingDataError, match="not a plain folder"):
        safe_extract_zip(z, dest)
    assert list(outside.iterdir()) == []


def test_declared_size_ratio_and_count_limits(tmp_path: Path) -> None:
    big = write_zip(tmp_path / "big.zip", [("zeros.bin", bytes(3_000_000))])
    with pytest.raises(TrainingDataError, match="would unpack to"):
        safe_extract_zip(big, tmp_path / "d1", max_total_bytes=1e6, max_ratio=1e9)
    with pytest.raises(TrainingDataError, match="zip bomb"):
        safe_extract_zip(big, tmp_path / "d2")  # ~1000x deflate ratio on a 3 MB member
    many_small = write_zip(tmp_path / "many.zip", [(f"z{i}.bin", bytes(900_000)) for i in range(10)])
    with pytest.raises(TrainingDataError, match="zip bomb"):  # each member under 1 MiB: caught on the whole archive
        safe_extract_zip(many_small, tmp_path / "d3")
    with pytest.raises(TrainingDataError, match="entries"):
        safe_extract_zip(write_zip(tmp_path / "n.zip", [(f"{i}", b"x") for i in range(5)]), tmp_path / "d4",
                         max_files=3)
    assert not any((tmp_path / d).exists() for d in ("d1", "d2", "d3", "d4"))


def test_forged_sizes_abort_and_remove_what_was_written(tmp_path: Path) -> None:
    z = tmp_path / "forged.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("first.txt", b"kept until the bomb is found")
        zf.writestr("bomb.bin", os.urandom(200_000))
        zf.infolist()[1].file_size = 1000  # the central directory lies: declares 1000 bytes
    dest = tmp_path / "dest"
    with pytest.raises(TrainingDataError, match="zip bomb|damaged"):
        safe_extract_zip(z, dest)
    assert tree(dest) == set()


def test_duplicates_encrypted_and_garbage_are_refused(tmp_path: Path) -> None:
    dup = write_zip(tmp_path / "dup.zip", [("a.txt", b"1"), ("a.txt", b"2")])
    with pytest.raises(TrainingDataError, match="twice"):
        safe_extract_zip(dup, tmp_path / "d")
    enc = tmp_path / "enc.zip"
    with zipfile.ZipFile(enc, "w") as zf:
        zf.writestr("secret.txt", b"x")
        zf.infolist()[0].flag_bits |= 0x1  # the central directory says "encrypted"
    with pytest.raises(TrainingDataError, match="encrypted"):
        safe_extract_zip(enc, tmp_path / "d")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(TrainingDataError, match="not a readable zip"):
        safe_extract_zip(junk, tmp_path / "d")
