"""Export a chosen point, reload the file, re-score it, and only then put it in place.

Formats: ONNX (fp32, fp16, int8 QDQ), a torch.export `.pt2`, and the compact archive
(`.etz`). The model is rebuilt from the stored Spec (every step is seeded, students
come from the cache), written to a temporary file beside the target, reloaded from
disk and scored in its own runtime. If that accuracy differs from the stored point
by more than 0.3 point the export fails and nothing is left under the final name;
otherwise the file is renamed into place, next to a JSON model card.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

import core
from core import archive, onnx_io
from core import spec as S
from core.data import DataSet
from core.measure import Metrics
from core.models import GraphModel, LoadedModel
from core.deploy import Float16, Int8
from core.store import Point
from core.train import accuracy

TOLERANCE = 0.003  # 0.3 accuracy point
FORMATS = {"onnx": ".onnx", "onnx-fp16": ".onnx", "onnx-int8": ".onnx", "pt2": ".pt2", "archive": ".etz"}


class ExportError(RuntimeError):
    """An export that was refused or did not verify; one sentence on why."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    card_path: Path
    reloaded_accuracy: float
    stored_accuracy: float


def default_format(spec: S.Spec) -> str:
    """The format the point was measured as."""
    if isinstance(spec.deploy, Int8):
        return "onnx-int8"
    return "onnx-fp16" if isinstance(spec.deploy, Float16) else "onnx"


def rebuild(point: Point, model: LoadedModel, data: DataSet, progress=None) -> LoadedModel:
    """The compressed model of `point`, recomputed from its Spec on the same model and data."""
    if model.fingerprint != point.model_fingerprint:
        raise ExportError(f"The model's weights changed since this point was measured ({point.model}); "
                          "rerun the sweep to measure the current model.")
    if data.fingerprint != point.data_fingerprint:
        raise ExportError(f"The data changed since this point was measured ({point.data}); rerun the sweep.")
    return S.apply(model, point.spec, data, progress)


def _writable_dir(out: Path) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"Cannot write {out}: the folder {parent} does not exist.")
    probe = parent / f".edgetrim-probe-{os.getpid()}"
    try:
        if not os.access(parent, os.W_OK):
            raise PermissionError
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise ExportError(f"Cannot write {out}: the folder {parent} is not writable; choose another -o path.") from e


def _write_and_score(model: LoadedModel, spec: S.Spec, fmt: str, tmp: Path, data: DataSet) -> tuple[float, str]:
    """Write `model` as `fmt` to `tmp`, reload it from disk, and score it in its runtime."""
    test = data.adapted(model.input_shape)
    if fmt.startswith("onnx"):
        deploy = {"onnx": None, "onnx-fp16": Float16(),
                  "onnx-int8": spec.deploy if isinstance(spec.deploy, Int8) else Int8()}[fmt]
        onnx_io.write_deployable(model, deploy, tmp, calibration=test.train)
        import onnxruntime

        return onnx_io.onnx_accuracy(tmp, test.test), f"onnxruntime {onnxruntime.__version__}"
    if fmt == "pt2":
        with onnx_io.EXPORT_LOCK:
            program = torch.export.export(model.module.eval(), (model.example_input(2),),
                                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
        torch.export.save(program, tmp)
        return accuracy(GraphModel(torch.export.load(tmp).module()), test.test), f"torch {torch.__version__}"
    if fmt == "archive":
        archive.write_archive(model, tmp)
        return accuracy(archive.load_archive(tmp).module, test.test), f"torch {torch.__version__} (edgetrim archive)"
    raise ExportError(f"Unknown format {fmt!r}; choose from {', '.join(FORMATS)}.")


HOW_TO_LOAD = {
    "onnx": "import onnxruntime as ort; s = ort.InferenceSession(PATH); logits = s.run(None, {'input': x})[0]",
    "pt2": "import torch; m = torch.export.load(PATH).module(); logits = m(x)",
    "archive": "from core.archive import load_archive; m = load_archive(PATH).module; logits = m(x)",
}


def export_point(point: Point, model: LoadedModel, data: DataSet, fmt: str | None, out: str | Path,
                 baseline: Metrics | None = None, progress=None) -> ExportResult:
    """Rebuild, write, reload, re-score, then atomically place the file and its model card."""
    if point.status != "ok" or point.metrics is None:
        raise ExportError(f"Point {point.key} failed when measured ({point.error}); pick another.")
    fmt = fmt or default_format(point.spec)
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; choose from {', '.join(FORMATS)}.")
    if str(out).endswith(("/", os.sep)):  # "-o out/" names a folder, made if missing
        Path(out).mkdir(parents=True, exist_ok=True)
    out = Path(out)
    if out.is_dir():
        out = out / f"{point.model}-{point.spec.hash}-{fmt}{FORMATS[fmt]}"  # formats sharing a suffix never collide
    _writable_dir(out)
    compressed = rebuild(point, model, data, progress)
    if progress:
        progress(0, 1, f"writing the {fmt} file, reloading it from disk and scoring it")
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")  # torch.export wants the .pt2 suffix
    try:
        score, runtime = _write_and_score(compressed, point.spec, fmt, tmp, data)
        stored = point.metrics.accuracy
        if abs(score - stored) > TOLERANCE:
            raise ExportError(f"The exported {fmt} file scores {100 * score:.2f} % in {runtime.split()[0]}, but the "
                              f"stored point scored {100 * stored:.2f} % (more than 0.3 point apart); nothing was "
                              "written. Export the point in the format it was measured as "
                              f"({default_format(point.spec)}).")
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        size = tmp.stat().st_size
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    card = {
        "edgetrim": core.__version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "file": out.name, "format": fmt, "bytes": size, "sha256": digest,
        "model": {"name": point.model, "fingerprint": point.model_fingerprint, "arch": compressed.arch,
                  "arch_kwargs": compressed.arch_kwargs},
        "data": {"name": point.data, "fingerprint": point.data_fingerprint, "test_samples": point.metrics.test_samples},
        "input_shape": list(compressed.input_shape), "input_name": "input", "output_name": "logits",
        "num_classes": compressed.num_classes,
        "spec": point.spec.to_dict(full=True), "spec_hash": point.spec.hash, "label": point.spec.label,
        "family": point.spec.family, "point_key": point.key,
        "accuracy": {"reloaded_from_file": score, "stored_point": point.metrics.accuracy, "tolerance": TOLERANCE},
        "metrics": point.metrics.to_dict(),
        "baseline": baseline.to_dict() if baseline else None,
        "runtime": runtime, "threads": point.metrics.latency[0].threads if point.metrics.latency else None,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "how_to_load": HOW_TO_LOAD["onnx" if fmt.startswith("onnx") else fmt].replace("PATH", repr(out.name)),
    }
    card_path = out.with_name(out.name + ".json")
    tmp_card = card_path.with_name(f".{card_path.name}.tmp")
    tmp_card.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp_card, card_path)
    return ExportResult(out, card_path, score, point.metrics.accuracy)
