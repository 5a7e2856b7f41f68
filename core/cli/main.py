"""Command line: ``python -m core train | evaluate | analyze | report | archs``.

``main(argv) -> int`` is tested in-process. Errors a user can cause print one clear line and exit 2; nothing prints
a traceback unless ``BDA_DEBUG=1`` is set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from core.cli.argparse_i18n import argparse_language
from core.errors import CoreError
from core.i18n import _, normalise, use
from core.learn.evaluation_labels import EVALUATE_SECTIONS, evaluation_label, evaluation_unit


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help=_("train a detector on normal imagery (+ optional anomalies)"))
    p.add_argument("--arch", default="fcdd-vgg11", help=_("architecture name (see `python -m core archs`)"))
    p.add_argument("--normal", nargs="+", required=True, metavar="PATH",
                   help=_("folders, globs or files of normal images"))
    p.add_argument("--anomalies", nargs="*", default=[], metavar="PATH",
                   help=_("labelled anomalies (outlier exposure)"))
    p.add_argument("--out", default="model.pt",
                   help=_("checkpoint to write (NAME.pt), or a folder (created when missing) for NAME.pt, NAME "
                             "being --name or the architecture"))
    p.add_argument("--pretrained", default="auto",
                   help=_("auto (the trunk's installed offline source, e.g. hed-vgg16 for VGG16 trunks, "
                             "efficientnet-lite0 for effnet-lite0; else none) | none | hed-vgg16 | efficientnet-lite0 "
                             "| imagenet (torch hub cache only) | PATH to a backbone state_dict"))
    p.add_argument("--freeze", choices=["auto", "none", "trunk"], default="auto",
                   help=_("auto: a pretrained trunk is frozen but for its last stage; trunk: train the head only"))
    p.add_argument("--eta", type=float, default=None,
                   help=_("Deep SAD (deep-sad-*): weight η of the labelled anomalies in the loss (default 1)"))
    p.add_argument("--neighbours", type=int, default=None,
                   help=_("feature matching (patchcore-*): a location's anomaly is its mean distance to this many "
                          "nearest normal features (default 9; 1: the nearest alone)"))
    p.add_argument("--stages", type=int, default=None,
                   help=_("feature matching (patchcore-*): how many of the trunk's last stages describe a location "
                          "(default 3, e.g. VGG16's conv2_2, conv3_3 and conv4_3; 2: the last two)"))
    p.add_argument("--bank-max", type=int, default=16_384,
                   help=_("feature matching (patchcore-*): most normal features kept in the memory bank"))
    p.add_argument("--input-size", type=int, default=224,
                   help=_("side of the square training patches in px (a multiple of 8, at least 32)"))
    p.add_argument("--epochs", type=int, default=10, help=_("training epochs"))
    p.add_argument("--steps-per-epoch", type=int, default=50, help=_("optimiser steps per epoch"))
    p.add_argument("--batch-size", type=int, default=16, help=_("patches per step"))
    p.add_argument("--optimizer", choices=["auto", "sgd", "adam"], default="auto",
                   help=_("auto: the objective's paper (SGD for FCDD and HSC, Adam for Deep SVDD and Deep SAD)"))
    p.add_argument("--lr", type=float, default=1e-3, help=_("learning rate"))
    p.add_argument("--weight-decay", type=float, default=1e-6, help=_("weight decay of the optimiser"))
    p.add_argument("--lr-decay", type=float, default=0.985, help=_("learning-rate factor per epoch"))
    p.add_argument("--confetti", choices=["auto", "mix", "off"], default="auto",
                   help=_("synthetic confetti anomalies: auto = only when no --anomalies, mix = also with them"))
    p.add_argument("--region-share", type=float, default=0.0,
                   help=_("share of synthetic anomalies drawn as large smooth/cluttered regions (0..1)"))
    p.add_argument("--exclude-bounds", nargs=4, type=float, action="append", default=[],
                   metavar=("W", "S", "E", "N"), help=_("WGS84 area never sampled for training (repeatable)"))
    p.add_argument("--exclude-like", nargs="*", default=[], metavar="RASTER",
                   help=_("never sample where these georeferenced rasters lie (e.g. held-out evaluation chips)"))
    p.add_argument("--gsd", type=float, default=None, help=_("ground sample distance of the training imagery (m)"))
    p.add_argument("--seed", type=int, default=0, help=_("random seed (same seed, same sampling)"))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--name", default="", help=_("model name shown in the app and reports"))


def _add_evaluate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help=_("AUROC of a model on labelled data"))
    p.add_argument("--model", default=None, help=_("checkpoint (default: the bundled model)"))
    p.add_argument("--normal", nargs="+", metavar="PATH", help=_("normal images: folders, globs or files"))
    p.add_argument("--anomalous", nargs="+", metavar="PATH", help=_("anomalous images: folders, globs or files"))
    p.add_argument("--xbd", metavar="DIR", help=_("xBD folder with images/ and labels/"))
    p.add_argument("--patch", type=int, default=None,
                   help=_("score georeferenced rasters as patches of this many px (patch-level AUROC)"))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                   help=_("auto: bf16 on GPUs and CPUs with native bf16 (default; $BDA_PRECISION), fp32 to force it"))
    p.add_argument("--json", action="store_true", help=_("print one JSON object"))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="python -m core",
                                     description=_("BDA workbench: detectors, analysis, reports"))
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    sub.add_parser("archs", help=_("list the registered architectures"))
    from core.cli.analyze import add_analyze
    from core.cli.buildings import add_buildings
    from core.cli.case import add_case
    from core.cli.place import add_place
    from core.cli.report import add_report
    from core.cli.users import add_users

    add_analyze(sub)
    add_report(sub)
    add_case(sub)
    add_place(sub)
    add_users(sub)
    add_buildings(sub)
    return parser


def _bounds_of(paths: Sequence[str]) -> list[list[float]]:
    from core.geo.georef import bounds_wgs84
    from core.imagery.reader import open_scene

    out = []
    for p in paths:
        scene = open_scene(p)
        scene.close()
        if scene.georef is None:
            raise CoreError(_("--exclude-like {p}: the file has no georeferencing").format(p=p))
        out.append(list(bounds_wgs84(scene.georef, scene.width, scene.height)))
    return out


def cmd_train(a: argparse.Namespace) -> int:
    """Train and write a checkpoint."""
    from core.cli.outpaths import out_file
    from core.file_names import safe_filename
    from core.learn.training import TrainConfig, train

    out = out_file(a.out, safe_filename(f"{a.name or a.arch}.pt"), (".pt", ".pth", ".ckpt"))
    cfg = TrainConfig(arch=a.arch, normal=a.normal, anomalies=a.anomalies, out=str(out), pretrained=a.pretrained,
                      input_size=a.input_size, epochs=a.epochs, steps_per_epoch=a.steps_per_epoch,
                      batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr, weight_decay=a.weight_decay,
                      lr_decay=a.lr_decay, confetti=a.confetti, region_share=a.region_share,
                      exclude_bounds=[list(b) for b in a.exclude_bounds] + _bounds_of(a.exclude_like),
                      gsd_m=a.gsd, seed=a.seed, device=a.device, name=a.name, freeze=a.freeze, bank_max=a.bank_max,
                      options={k: v for k, v in (("eta", a.eta), ("neighbours", a.neighbours),
                                                                     ("stages", a.stages)) if v is not None})
    meta = train(cfg)
    cal = meta["calibration"]
    bank = meta["training"].get("feature_bank")
    what = (_("feature bank of {bank} from {cells} normal cells").format(bank=bank["bank"], cells=bank["cells"])
            if bank else _("{n} samples").format(n=meta["training"]["samples"]))
    print(_("wrote {path} (sha256 {sha}…); threshold {threshold}; {what} in {seconds} s").format(
        path=meta["path"], sha=meta["sha256"][:12], threshold=f"{cal['threshold']:.2f}", what=what,
        seconds=f"{meta['training']['seconds']:.0f}"))
    return 0


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def evaluation_lines(result: dict[str, Any]) -> list[str]:
    """The human-readable lines of ``evaluate``: one heading per section, one labelled line per figure."""
    lines = []
    for section in ("images", "xbd"):
        if section not in result:
            continue
        lines.append(f"[{_(EVALUATE_SECTIONS[section])}]")
        for k, v in result[section].items():
            if k == "skipped" and not v:
                continue
            label = evaluation_label(k)
            value = evaluation_unit(v) if k == "unit" else ("; ".join(map(str, v)) if isinstance(v, list) else _fmt(v))
            lines.append(f"  {label}: {value}")
    return lines


def cmd_evaluate(a: argparse.Namespace) -> int:
    """Print AUROC figures."""
    from core.detection.detector import Detector
    from core.learn.evaluation import evaluate_images, evaluate_xbd

    if not a.xbd and not (a.normal and a.anomalous):
        raise CoreError(_("give --normal and --anomalous, or --xbd DIR"))
    det = Detector.load(a.model, device=a.device, precision=a.precision)
    result: dict[str, Any] = {"model": det.info()}
    if a.normal and a.anomalous:
        r = evaluate_images(det, a.normal, a.anomalous, patch=a.patch)
        result["images"] = {k: v for k, v in r.items() if k not in ("scores", "labels")}
    if a.xbd:
        r = evaluate_xbd(det, a.xbd)
        result["xbd"] = {k: v for k, v in r.items() if not k.startswith("building_s") and k != "building_labels"}
    if a.json:
        print(json.dumps(result, default=float))
    else:
        print("\n".join(evaluation_lines(result)))
    return 0


def cmd_archs(_a: argparse.Namespace) -> int:
    """List the architectures, each with its family and what it is."""
    from core.models import arch_info, list_archs

    width = max(map(len, list_archs()))
    for name in list_archs():
        info = arch_info(name)
        print(f"{name:{width}s}  {info['description']}")
    return 0


def _lang_in(argv: Sequence[str]) -> str | None:
    """The known language of a ``--lang X`` / ``--lang=X`` on the command line, if any (for its help and usage
    errors, read before argparse has parsed it; an unknown value is left to argparse's own error)."""
    for k, arg in enumerate(argv):
        value = arg.partition("=")[2] if arg.startswith("--lang=") else (
            argv[k + 1] if arg == "--lang" and k + 1 < len(argv) else None)
        if value is not None and normalise(value):
            return normalise(value)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # help, usage and argparse's errors in the language in use: $BDA_LANG, or `report --lang` given on the line
    with use(_lang_in(argv)), argparse_language():
        parser = build_parser()
        a = parser.parse_args(argv)
    from core.cli.analyze import cmd_analyze
    from core.cli.buildings import cmd_buildings
    from core.cli.case import cmd_case
    from core.cli.place import cmd_place
    from core.cli.report import cmd_report
    from core.cli.users import cmd_cases, cmd_users

    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "archs": cmd_archs, "analyze": cmd_analyze,
                "report": cmd_report, "case": cmd_case, "place": cmd_place, "users": cmd_users, "cases": cmd_cases,
                "buildings": cmd_buildings}
    scope = contextlib.ExitStack()  # `report --lang`: this command's messages and report text, and no further
    scope.enter_context(use(getattr(a, "lang", None)))
    try:
        rc = handlers[a.command](a)
        sys.stdout.flush()  # output to a pipe is buffered: a reader gone (`| head`) shows here, not at exit
        return rc
    except CoreError as exc:
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_("interrupted"), file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output went away (`... | head`): not an error of ours to report
        with contextlib.suppress(OSError, ValueError):  # no flush of the rest at exit into the closed pipe
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug, not a user error: short message, traceback only on request
        if os.environ.get("BDA_DEBUG"):
            traceback.print_exc()
        print(_("internal error: {kind}: {exc} (set BDA_DEBUG=1 for details; please report it)").format(
            kind=exc.__class__.__name__, exc=exc), file=sys.stderr)
        return 3
    finally:
        scope.close()
