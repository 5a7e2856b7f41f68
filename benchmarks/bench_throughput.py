"""Inference and training throughput of every registered architecture (tiles/s at 224 px).

    python -m benchmarks.bench_throughput [--archs fcdd-vgg16 ...] [--batch 32] [--size 224] [--iters 3]

CPU: fp32, and bf16 autocast with channels_last when the CPU computes bf16 natively (AVX512-BF16 / AMX).
CUDA (when present): fp32, bf16 and fp16 autocast with channels_last. For the end-to-end ``Detector.predict`` path
(pinned double buffer, old vs new interleaved) see ``benchmarks/bench_speed.py``. Figures are printed as a table
and, with --json, as one JSON object. Target on one H100 for fcdd-vgg16: >= 3,000 tiles/s (bf16).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from core.detection.detector import cpu_has_bf16
from core.models import arch_info, build_model, list_archs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rate(step, device: torch.device, batch: int, iters: int) -> float:
    """Items per second of ``step`` (one warm-up call, then ``iters`` timed calls of ``batch`` items)."""
    step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return batch * iters / (time.perf_counter() - t)


def bench_infer(arch: str, device: torch.device, dtype: torch.dtype | None, batch: int, size: int,
                iters: int) -> float:
    """Tiles/s of ``heatmap()`` (forward + Gaussian upsampling / HSC gradients)."""
    net = build_model(arch).to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    if device.type == "cuda" or dtype is not None:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            if net.heatmap_needs_grad:  # saliency heatmaps take gradients
                net.heatmap(x)
            else:
                with torch.inference_mode():
                    net.heatmap(x)

    return _rate(step, device, batch, iters)


def bench_train(arch: str, device: torch.device, dtype: torch.dtype | None, batch: int, size: int,
                iters: int) -> float:
    """Samples/s of forward + loss + backward + SGD step."""
    net = build_model(arch).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device)
    y = (torch.arange(batch, device=device) % 2).float()
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = net(x)
        loss = net.loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _rate(step, device, batch, iters)


def main() -> int:
    """Print the throughput table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", nargs="*", default=list_archs())
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    modes: list[tuple[str, torch.device, torch.dtype | None]] = [("cpu-fp32", torch.device("cpu"), None)]
    if cpu_has_bf16():
        modes.append(("cpu-bf16", torch.device("cpu"), torch.bfloat16))
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        modes = [("cuda-fp32", dev, None), ("cuda-bf16", dev, torch.bfloat16), ("cuda-fp16", dev, torch.float16)]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}; batch {a.batch}, "
          f"{a.size} px")
    rows = []
    for arch in a.archs:
        for mode, dev, dt in modes:
            iters = a.iters if dev.type == "cpu" else max(a.iters, 20)
            inf = bench_infer(arch, dev, dt, a.batch, a.size, iters)
            trains = not a.no_train and arch_info(arch)["trained_by_gradient"]
            tr = bench_train(arch, dev, dt, a.batch, a.size, iters) if trains else None
            rows.append({"arch": arch, "mode": mode, "infer_tiles_s": round(inf, 1),
                         "train_samples_s": round(tr, 1) if tr else None})
            print(f"{arch:16s} {mode:10s} inference {inf:9.1f} tiles/s" +
                  (f"   training {tr:8.1f} samples/s" if tr else ""), flush=True)
    if a.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
