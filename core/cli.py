"""The edgetrim command line: the same engine as the dashboard, headless.

    edgetrim models                      # bundled samples with baseline metrics measured now
    edgetrim measure --model lenet5      # one model's metrics (a sample name or a file)
    edgetrim measure --model my.pt --arch tv:resnet18 --input-shape 3x64x64 --data my.npz
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from core import data as D
from core import measure as ME
from core import models as M


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
    }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


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
    if args.model in M.sample_names():
        return M.load_sample(args.model)
    if "/" not in args.model and "." not in args.model:
        raise UsageError(f"No sample model named {args.model!r}; the samples are {', '.join(M.sample_names())}, "
                         "or give a path to a model file.")
    return M.load_model(args.model, arch=args.arch, input_shape=parse_shape(args.input_shape),
                        num_classes=args.num_classes)


def _progress(items, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="model", file=sys.stderr, leave=False, disable=not sys.stderr.isatty())


def cmd_models(args) -> None:
    data = D.load_data(args.data)
    rows, full = [], {}
    for name in _progress(M.sample_names(), "measuring"):
        m = ME.measure(M.load_sample(name), data, latency=not args.no_latency, threads=args.threads)
        rows.append(metrics_row(name, m))
        full[name] = m.to_dict()
    if args.json:
        print(json.dumps(full, indent=2))
        return
    print(f"data: {data.describe()}; threads: {args.threads or ME.torch.get_num_threads()}; "
          f"latency: median of repeated calls after warm-up")
    print(format_table(rows))


def cmd_measure(args) -> None:
    model = open_model(args)
    data = D.load_data(args.data)
    if data.num_classes > model.num_classes:
        raise UsageError(f"{data.name} has {data.num_classes} classes but the model scores only {model.num_classes}.")
    m = ME.measure(model, data, latency=not args.no_latency, threads=args.threads)
    if args.json:
        print(m.to_json())
        return
    print(f"model: {model.name} ({model.arch or 'graph'}, input {'x'.join(map(str, model.input_shape))}); "
          f"data: {data.describe()}")
    print(format_table([metrics_row(model.name, m)]))
    if m.latency:
        print()
        print(format_table([{"runtime": l.runtime, "batch": l.batch, "median ms": round(l.median_ms, 4),
                             "p90 ms": round(l.p90_ms, 4), "repeats": l.repeats, "threads": l.threads}
                            for l in m.latency]))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edgetrim", description="Fit a trained classifier to its device budget.")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--data", default="digits", help="'digits' (bundled), an .npz, an ImageFolder or IDX folder")
        p.add_argument("--threads", type=int, default=None, help="CPU threads for both runtimes (default: all)")
        p.add_argument("--no-latency", action="store_true", help="skip timing (faster)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("models", help="list the bundled sample models with baseline metrics measured now")
    common(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("measure", help="measure one model")
    p.add_argument("--model", required=True, help="a sample name, or a .pt state_dict / TorchScript / .pt2 file")
    p.add_argument("--arch", help="architecture of a state_dict: mlp, lenet5 or tv:<torchvision name>")
    p.add_argument("--input-shape", help="C x H x W the model expects, e.g. 3x224x224")
    p.add_argument("--num-classes", type=int, help="classes the model scores (default: read from the weights)")
    common(p)
    p.set_defaults(func=cmd_measure)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as e:  # DataError, ModelLoadError, UsageError, unreadable files
        print(f"edgetrim: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgetrim: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
