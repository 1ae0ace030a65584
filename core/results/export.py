"""Export a chosen point, reload the file, re-score it, and only then put it in place.

Formats: ONNX (fp32, fp16, int8 QDQ, int4 MatMulNBits), ExecuTorch `.pte` (fp32, int8,
int4; XNNPACK), LiteRT `.tflite` (fp32, int8, int4), a torch.export `.pt2`, and the compact archive (`.etz`).
The file comes from
the point's kept files (core.results.artefacts): the measured file itself when the format is the one
it was measured in, else written from its kept archive; only when those are gone is the
model rebuilt from the stored Spec (every step is seeded, students come from the cache).
It is put in a temporary file beside the target, reloaded from disk and scored in its own runtime. If that accuracy differs from the stored point
by more than 0.3 point (0.5 point when the point was measured in another runtime
only: a .pte or .tflite checked against the ONNX file's accuracy) the export fails and nothing is left under the final name;
otherwise the file is renamed into place, next to a JSON model card.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import core
from core.inputs.data import DataSet
from core.inputs.models import LoadedModel
from core.methods import spec as S
from core.methods.deploy import W4A8, Float16, Int4, Int8
from core.results.store import Point
from core.runtimes import archive, runtime
from core.runtimes.measure import Metrics

TOLERANCE = 0.003        # 0.3 accuracy point, against the stored accuracy of the same runtime's file
CROSS_TOLERANCE = 0.005  # 0.5 point, against the ONNX file's when the point never ran in this runtime
FORMATS = {  # format -> (the runtime that writes and reloads it, the kind of deploy format it ships)
    "onnx": ("onnxruntime", None), "onnx-fp16": ("onnxruntime", Float16), "onnx-int8": ("onnxruntime", Int8),
    "onnx-int4": ("onnxruntime", Int4), "onnx-w4a8": ("onnxruntime", W4A8), "pte": ("executorch", None), "pte-int8": ("executorch", Int8),
    "pte-int4": ("executorch", Int4), "tflite": ("litert", None), "tflite-int8": ("litert", Int8),
    "tflite-int4": ("litert", Int4), "pt2": ("pytorch", None), "archive": ("archive", None)}


class ExportError(RuntimeError):
    """An export that was refused or did not verify; one sentence on why."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    card_path: Path
    reloaded_accuracy: float
    stored_accuracy: float   # what the file was checked against: the point's accuracy in that runtime
    source: str = "rebuilt"  # 'kept': from the point's kept files, nothing trained; 'rebuilt': from its Spec


def suffix(fmt: str) -> str:
    """The file suffix of an export format: its runtime's ('.onnx', '.pte', '.tflite', '.pt2', '.etz')."""
    return runtime.get(FORMATS[fmt][0]).suffix


def default_format(spec: S.Spec, runtime: str = "onnxruntime") -> str:
    """The format the point was measured as, in `runtime`'s file (onnxruntime, executorch or litert)."""
    kind = type(spec.deploy) if spec.deploy is not None else None
    return next(f for f, (r, k) in FORMATS.items() if r == _file_runtime(runtime) and k is kind)


def _file_runtime(name: str) -> str:
    """The runtime whose file runtime `name` runs: its own where it writes one (ExecuTorch, LiteRT), else ONNX
    Runtime's (its CUDA provider; PyTorch's timings)."""
    rt = runtime.get(name)
    return rt.name if rt.measures_file and rt.kept_as != "onnx" else "onnxruntime"


def _deploy_for(fmt: str, spec: S.Spec):
    """The deploy format a file format writes: the point's own when it is of that kind (its calibration, block
    size), else the default of that kind."""
    cls = FORMATS[fmt][1]
    return None if cls is None else spec.deploy if isinstance(spec.deploy, cls) else cls()


def rebuild(point: Point, model: LoadedModel, data: DataSet, progress=None) -> LoadedModel:
    """The compressed model of `point`, recomputed from its Spec on the same model and data."""
    if model.fingerprint != point.model_fingerprint:
        raise ExportError(f"The model's weights changed since this point was measured ({point.model}); "
                          "rerun the sweep to measure the current model.")
    if data.fingerprint != point.data_fingerprint:
        raise ExportError(f"The data changed since this point was measured ({point.data}); rerun the sweep.")
    return S.apply(model, point.spec, data, progress)


def compressed_model(point: Point, model: LoadedModel, data: DataSet, kept: dict[str, Path],
                     progress=None) -> tuple[LoadedModel, str]:
    """The point's compressed model and where it came from: its kept archive ('kept'), the model itself when the
    Spec changes no weight, else rebuilt from the Spec ('rebuilt': trained again, said to `progress` first)."""
    if "archive" in kept:
        return archive.load_archive(kept["archive"]), "kept"
    if point.spec.weight_steps() and progress:
        progress(0, 1, "this point's kept files are gone (evicted, or measured on another machine): "
                       "rebuilding it from its Spec")
    return rebuild(point, model, data, progress), "rebuilt" if point.spec.weight_steps() else "kept"


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


def _write(model: LoadedModel, spec: S.Spec, fmt: str, tmp: Path, data: DataSet) -> None:
    """Write `model` as `fmt` to `tmp`, with the runtime that runs it."""
    try:
        runtime.get(FORMATS[fmt][0]).write(model, _deploy_for(fmt, spec), tmp, data.adapted(model.input_shape).train)
    except runtime.CannotRun as e:
        raise ExportError(str(e)) from None


def _score(fmt: str, path: Path, input_shape: tuple[int, ...], data: DataSet) -> tuple[float, str]:
    """Reload the file at `path` from disk and score it on the test split in its own runtime."""
    rt = runtime.get(FORMATS[fmt][0])
    return rt.score(rt.load(path, None), data.adapted(input_shape).test), f"{rt.package} {rt.version()}"


def kept_file_for(fmt: str, spec: S.Spec, kept: dict[str, Path]) -> Path | None:
    """The kept file that IS the `fmt` file: the one measured in that format (ONNX, .pte) or the archive."""
    rt = runtime.get(FORMATS[fmt][0])
    measured_as = fmt == "archive" or fmt == default_format(spec, rt.name)
    return kept.get(rt.kept_as) if measured_as and rt.kept_as else None


def _device_memory(fmt: str, path: Path) -> dict:
    """{'microcontroller': flash, RAM, how found, the boards it fits on} for a file whose runtime says its RAM
    (LiteRT: core.runtimes.micro), else {}."""
    from core.runtimes import micro

    memory = runtime.get(FORMATS[fmt][0]).memory
    if memory is None:
        return {}
    flash, (ram, source) = path.stat().st_size, memory(path)
    return {"microcontroller": {"flash_bytes": flash, "ram_bytes": ram, "ram_from": source,
                                "fits_on": micro.boards_fitting(flash, ram, source)}}


def _write_card(out: Path, card: dict) -> Path:
    """The model card beside `out` (`<file>.json`), put in place atomically like the file."""
    card_path = out.with_name(out.name + ".json")
    tmp_card = card_path.with_name(f".{card_path.name}.tmp")
    tmp_card.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp_card, card_path)
    return card_path


HOW_TO_LOAD = {
    "onnx": "import onnxruntime as ort; s = ort.InferenceSession(PATH); logits = s.run(None, {'input': x})[0]",
    "pte": "from executorch.runtime import Runtime; m = Runtime.get().load_program(PATH).load_method('forward'); "
           "logits = m.execute([x])[0]  # x: float32, batch 1 to 64",
    "tflite": "from ai_edge_litert.interpreter import Interpreter; it = Interpreter(model_path=PATH); "
              "it.allocate_tensors(); i, o = it.get_input_details()[0], it.get_output_details()[0]; "
              "it.set_tensor(i['index'], x); it.invoke(); logits = it.get_tensor(o['index'])  "
              "# x: one image (batch 1), float32; an int8 file takes round(x / scale) + zero_point as int8 and returns "
              "int8 logits (i['quantization'], o['quantization'])",
    "pt2": "import torch; m = torch.export.load(PATH).module(); logits = m(x)",
    "archive": "from core.runtimes.archive import load_archive; m = load_archive(PATH).module; logits = m(x)  "
               "# weights alone, numpy only: from core.inputs.etz import read; header, weights = read(PATH)",
}
LOSSLESS = ("onnx", "pte", "tflite", "pt2", "archive")  # hold the weights as they are (the others round them)


def export_point(point: Point, model: LoadedModel, data: DataSet, fmt: str | None, out: str | Path,
                 baseline: Metrics | None = None, progress=None, runtime: str = "onnxruntime",
                 kept: dict[str, Path] | None = None, picked: dict | None = None) -> ExportResult:
    """Write (or copy), reload, re-score, then atomically place the file and its model card (with `picked`: the
    floor and budgets the point was picked under, as given). Without `fmt`, the
    point's own format in `runtime`'s file (an ExecuTorch .pte for 'executorch', a LiteRT .tflite for 'litert',
    else ONNX).

    `kept` (Store.artefacts) are the point's files kept when it was measured: the file measured in `fmt` is
    copied as it is (the bytes the point reports), another format is written from the kept archive, and only
    when neither is there is the point rebuilt from its Spec (trained again: `progress` says so first)."""
    if point.status != "ok" or point.metrics is None:
        raise ExportError(f"Point {point.key} failed when measured ({point.error}); pick another.")
    fmt = fmt or default_format(point.spec, runtime)
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; choose from {', '.join(FORMATS)}.")
    if str(out).endswith(("/", os.sep)):  # "-o out/" names a folder, made if missing
        Path(out).mkdir(parents=True, exist_ok=True)
    out = Path(out)
    if out.is_dir():
        out = out / f"{point.model}-{point.spec.hash}-{fmt}{suffix(fmt)}"  # formats sharing a suffix never collide
    _writable_dir(out)
    kept = kept or {}
    same = kept_file_for(fmt, point.spec, kept)
    if same is not None and "archive" not in kept:
        compressed, source = model, "kept"  # a fixed graph (no archive): its kept file is all there is
    else:
        compressed, source = compressed_model(point, model, data, kept, progress)
    if progress:
        progress(0, 1, f"{'copying the measured' if same else 'writing the'} {fmt} file, reloading it from disk "
                       "and scoring it")
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")  # torch.export wants the .pt2 suffix
    runtime_name = FORMATS[fmt][0]
    # the accuracy the file is checked against: the point's headline (its ONNX file's), or the other runtime's own
    measured_there = point.metrics.file(runtime_name) if runtime_name != "onnxruntime" else None
    stored = measured_there.accuracy if measured_there else point.metrics.accuracy
    # ExecuTorch's and LiteRT's kernels are not ONNX Runtime's: a file the point never ran is checked within
    # CROSS_TOLERANCE
    tolerance = CROSS_TOLERANCE if runtime_name in ("executorch", "litert") and not measured_there else TOLERANCE
    try:
        if same is not None:
            shutil.copyfile(same, tmp)
        else:
            _write(compressed, point.spec, fmt, tmp, data)
        score, runtime = _score(fmt, tmp, compressed.input_shape, data)
        if abs(score - stored) > tolerance:
            raise ExportError(f"The exported {fmt} file scores {100 * score:.2f} % in {runtime.split()[0]}, but the "
                              f"stored point scored {100 * stored:.2f} % (more than {100 * tolerance:.1f} point "
                              "apart); nothing was written. Export the point in the format it was measured as "
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
        "family": point.spec.family, "point_key": point.key, "made_from": source,
        "accuracy": {"reloaded_from_file": score, "stored_point": stored, "tolerance": tolerance,
                     "checked_against": f"the stored {runtime_name} file" if measured_there or runtime_name == "onnxruntime"
                     else "the stored point's ONNX file (it was not measured in this runtime)"},
        "metrics": point.metrics.to_dict(),
        "baseline": baseline.to_dict() if baseline else None,
        "runtime": runtime,
        "threads": next((l.threads for l in point.metrics.latency if l.runtime == runtime_name),
                        point.metrics.latency[0].threads if point.metrics.latency else None),
        "latency_ms": {f"{l.runtime} batch {l.batch}": round(l.median_ms, 4) for l in point.metrics.latency},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "how_to_load": HOW_TO_LOAD[fmt.partition("-")[0]].replace("PATH", repr(out.name)),
        **_device_memory(fmt, out),
        **({"picked_under": picked} if picked else {}),
    }
    card_path = _write_card(out, card)
    return ExportResult(out, card_path, score, stored, source)


@dataclass(frozen=True)
class Unpacked:
    path: Path
    card_path: Path
    accuracy: float          # the written file, reloaded from disk, in its own runtime
    archive_accuracy: float  # the archive's model in PyTorch on the same images
    checked: bool            # a lossless format: checked within TOLERANCE (a rounding format: its change is said)


def unpack(archive_path: str | Path, fmt: str, out: str | Path, data: DataSet, progress=None) -> Unpacked:
    """An archive (.etz) turned into a deployable `fmt` file: written by its runtime, reloaded from disk and
    scored on `data`'s test split beside the archive's own model in PyTorch. A lossless format (fp32 ONNX, .pte,
    .pt2) must agree within TOLERANCE or nothing is written; a format that rounds the weights (int8, int4, fp16)
    is written with its change said in its card."""
    from core.inputs.train import accuracy as torch_accuracy
    from core.runtimes.archive import load_archive

    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; choose from {', '.join(FORMATS)}.")
    model = load_archive(archive_path)
    if str(out).endswith(("/", os.sep)):
        Path(out).mkdir(parents=True, exist_ok=True)
    out = Path(out)
    if out.is_dir():
        out = out / f"{Path(archive_path).stem}-{fmt}{suffix(fmt)}"
    _writable_dir(out)
    cls = FORMATS[fmt][1]
    spec = S.Spec(deploy=cls() if cls else None)
    test = data.adapted(model.input_shape).test
    if progress:
        progress(0, 2, f"scoring the archive's model on {len(test):,} test images")
    reference = torch_accuracy(model.module, test)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")
    try:
        if progress:
            progress(1, 2, f"writing the {fmt} file, reloading it from disk and scoring it")
        _write(model, spec, fmt, tmp, data)
        score, checked_with = _score(fmt, tmp, model.input_shape, data)
        lossless = fmt in LOSSLESS
        if lossless and abs(score - reference) > TOLERANCE:
            raise ExportError(f"The {fmt} file scores {100 * score:.2f} % but the archive's model scores "
                              f"{100 * reference:.2f} % (more than {100 * TOLERANCE:.1f} point apart); nothing was "
                              "written.")
        size, digest = tmp.stat().st_size, hashlib.sha256(tmp.read_bytes()).hexdigest()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    card = {"edgetrim": core.__version__, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "file": out.name, "format": fmt, "bytes": size, "sha256": digest,
            "made_from": {"archive": Path(archive_path).name,
                          "sha256": hashlib.sha256(Path(archive_path).read_bytes()).hexdigest()},
            "model": {"name": model.name, "arch": model.arch, "arch_kwargs": model.arch_kwargs},
            "data": {"name": data.name, "fingerprint": data.fingerprint, "test_samples": len(test)},
            "input_shape": list(model.input_shape), "input_name": "input", "output_name": "logits",
            "num_classes": model.num_classes, "runtime": checked_with,
            "accuracy": {"reloaded_from_file": score, "archive_in_pytorch": reference,
                         "checked": "within the tolerance" if lossless else
                                    f"not checked: {fmt} rounds the weights ({100 * (score - reference):+.2f} point)",
                         "tolerance": TOLERANCE if lossless else None},
            "how_to_load": HOW_TO_LOAD[fmt.partition("-")[0]].replace("PATH", repr(out.name)),
            **_device_memory(fmt, out)}
    card_path = _write_card(out, card)
    return Unpacked(out, card_path, score, reference, fmt in LOSSLESS)
