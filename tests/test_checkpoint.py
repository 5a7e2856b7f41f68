"""Checkpoint safety: weights-only loading, hostile and broken files refused with clear errors."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from core.detection.detector import Detector
from core.errors import CheckpointError
from core.models import build_model
from core.models.checkpoint import FORMAT, load_model, read_checkpoint, save_checkpoint

torch.set_num_threads(1)


def _good(tmp_path: Path, arch: str = "fcdd-resnet18") -> Path:
    net = build_model(arch)
    path = tmp_path / "good.pt"
    save_checkpoint(path, net.state_dict(), {"arch": arch, "name": "t"})
    return path


def test_roundtrip_weights_and_meta(tmp_path):
    path = _good(tmp_path)
    net, meta, sha = load_model(path)
    ref = build_model("fcdd-resnet18")
    state = read_checkpoint(path)[0]
    assert meta["arch"] == "fcdd-resnet18" and len(sha) == 64
    assert set(state) == set(ref.state_dict())
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k])


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(_Evil.marker),))


def test_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "meta_json": '{"arch": "fcdd-resnet18"}', "state_dict": {"w": torch.zeros(1)},
                "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError):
        Detector.load(path, device="cpu")
    assert not marker.exists(), "code inside the checkpoint ran"


def test_plain_pickle_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    data = _good(tmp_path).read_bytes()
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        read_checkpoint(bad)


def test_empty_and_missing(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.pt")


def test_checkpoint_for_another_architecture(tmp_path):
    net = build_model("fcdd-resnet18")
    path = tmp_path / "mislabelled.pt"
    save_checkpoint(path, net.state_dict(), {"arch": "fcdd-vgg11"})
    with pytest.raises(CheckpointError, match="does not match architecture 'fcdd-vgg11'"):
        load_model(path)


def test_unknown_arch_and_wrong_structure(tmp_path):
    path = tmp_path / "x.pt"
    save_checkpoint(path, {"w": torch.zeros(1)}, {"arch": "no-such-net"})
    with pytest.raises(CheckpointError, match="no-such-net"):
        load_model(path)
    raw = tmp_path / "raw.pt"
    torch.save(build_model("fcdd-resnet18").state_dict(), raw)  # a bare state_dict, not our format
    with pytest.raises(CheckpointError, match="not a BDA workbench checkpoint"):
        read_checkpoint(raw)


def test_meta_must_be_json_safe(tmp_path):
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "m.pt", {"w": torch.zeros(1)}, {"arch": "x", "bad": object()})


def test_not_a_zip_even_with_pt_extension(tmp_path):
    path = tmp_path / "text.pt"
    path.write_text("hello")
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.pkl", b"garbage")
    (tmp_path / "z.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "z.pt")
