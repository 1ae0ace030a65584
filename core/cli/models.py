"""`edgetrim models` (the samples, from their cards) and `edgetrim measure` (one model, every metric)."""
from __future__ import annotations

import json
import sys

from core.cli.common import (UsageError, _epoch_progress, format_table, measure_options, metrics_row, open_model,
                             read_spec, warn_skipped, with_device)
from core.inputs import data as D
from core.inputs import models as M
from core.methods import spec as S
from core.results import describe
from core.runtimes import measure as ME


def add(sub) -> None:
    p = sub.add_parser("models", help="list the bundled sample models from their cards (seconds, nothing is "
                                      "measured; `edgetrim measure --model NAME` measures one)")
    p.add_argument("--json", action="store_true", help="print the cards as JSON instead of a table")
    p.set_defaults(func=cmd_models)

    p = with_device(sub.add_parser("measure", help="measure one model"))
    p.add_argument("--model", required=True, help="a sample name, or a .pt state_dict / TorchScript / .pt2 file")
    p.add_argument("--arch", help="architecture of a state_dict: mlp, mlp-<hidden>-<hidden> (e.g. mlp-1200-1200), "
                        "lenet5, lenet5_caffe, resnet18_small or tv:<torchvision name>")
    p.add_argument("--input-shape", help="C x H x W the model expects, e.g. 3x224x224")
    p.add_argument("--num-classes", type=int, help="classes the model scores (default: read from the weights)")
    p.add_argument("--spec", help="a compression Spec as JSON (or a .json file) to apply before measuring")
    measure_options(p)
    p.set_defaults(data=None)  # a sample on the data it was trained on (its card's), anything else on digits
    p.set_defaults(func=cmd_measure)


def card_row(name: str) -> dict:
    """A sample as its card describes it: nothing is loaded or measured (the numbers are the card's)."""
    card = M.sample_card(name)
    weights = M.SAMPLES_DIR / card.get("weights", f"{name}.pt")
    pct = lambda v: round(100 * v, 2) if isinstance(v, (int, float)) else None
    return {"model": name, "arch": card.get("arch"), "data": card.get("data", "digits"),
            "input": "x".join(map(str, card.get("input_shape") or [])) or None, "classes": card.get("num_classes"),
            "params": card.get("params"), "test acc %": pct(card.get("test_accuracy")),
            "val acc %": pct(card.get("val_accuracy")),
            "weights KB": round(weights.stat().st_size / 1024, 1) if weights.is_file() else None}


def cmd_models(args) -> None:
    """The bundled samples as their cards describe them, in a second: measuring one is `edgetrim measure`."""
    names = M.sample_names()
    if args.json:
        print(json.dumps({n: M.sample_card(n) for n in names}, indent=2))
        return
    print(format_table([card_row(n) for n in names]))
    print("test / val acc %: recorded in each card, on the splits of the data it was trained on; "
          "weights KB: the bundled .pt file")
    print("nothing was measured; to measure one now (files, sizes, accuracy per runtime, latency): "
          "edgetrim measure --model NAME")


def cmd_measure(args) -> None:
    warn_skipped(args.runtimes)
    model = open_model(args)
    data = D.load_data(args.data or (model.card or {}).get("data") or "digits")  # a sample: the data it learnt
    spec = read_spec(args.spec)
    reason = S.why_not_spec(model, data, spec)
    if reason:
        raise UsageError(reason)
    if spec.steps():
        print(f"applying {spec.label} ...", file=sys.stderr)
        model = S.apply(model, spec, data, progress=_epoch_progress())
    m = ME.measure(model, data, spec.deploy, latency=not args.no_latency, threads=args.threads,
                   runtimes=args.runtimes)
    if args.json:
        print(m.to_json())
        return
    print(f"spec: {spec.label} (hash {spec.hash})")
    print(f"model: {model.name} ({model.arch or 'graph'}, input {'x'.join(map(str, model.input_shape))}); "
          f"data: {data.describe()}")
    print(format_table([metrics_row(model.name, m)]))
    for note in describe.notes(m):
        print(f"note: {note}")
    for r in args.runtimes:
        why = ME.why_not_on(r, model, spec.deploy)
        if why and not ME.why_unavailable(r) and not (r == "pytorch" and spec.deploy is not None):
            print(f"note: not run on {r}: {why}")  # (PyTorch and a file format: said by the notes above)
    if m.files:
        print()
        print(format_table([{"runtime": f.runtime, "version": f.version, "file bytes": f.bytes,
                             "acc %": round(100 * f.accuracy, 2)} for f in m.files]))
    if m.latency:
        print()
        print(format_table([{"runtime": l.runtime, "batch": l.batch, "median ms": round(l.median_ms, 4),
                             "p90 ms": round(l.p90_ms, 4), "repeats": l.repeats, "threads": l.threads}
                            for l in m.latency]))
