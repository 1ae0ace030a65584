"""`edgetrim export` (a point, named or the pick above a floor) and `edgetrim unpack` (an archive): a deployable
file, reloaded and re-scored."""
from __future__ import annotations

import sys

from core.cli.common import (UsageError, _epoch_progress, _find_point, _store, device_budgets, with_device, with_floor,
                             with_store)
from core.cli.runs import settled_point, whole_split_pick


def add(sub) -> None:
    from core.results import export

    p = with_device(with_store(sub.add_parser("export", help="export a point, reloaded and re-scored")))
    p.add_argument("run")
    p.add_argument("point", nargs="?", help="point key (prefix); omit to export the pick above --floor/--max-drop")
    p.add_argument("--format", choices=list(export.FORMATS),
                   help="default: the format the point was measured as, for --runtime (pte for executorch, tflite for "
                   "litert)")
    p.add_argument("-o", "--output", required=True, help="file, or folder to write <model>-<spec hash>-<format> into")
    with_floor(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("unpack", help="turn a compact archive (.etz) into a deployable file, reloaded and re-scored")
    p.add_argument("archive", help="an edgetrim archive (.etz)")
    p.add_argument("--to", required=True, choices=list(export.FORMATS), help="the file to write")
    p.add_argument("--data", default="digits", help="the data it is scored on: 'digits', 'mnist', an .npz, an "
                   "ImageFolder (or its .zip) or IDX folder; int8 files calibrate on its training split")
    p.add_argument("-o", "--output", required=True, help="file, or folder to write <archive>-<format> into")
    p.set_defaults(func=cmd_unpack)


def cmd_export(args) -> None:
    from core.engine import runner
    from core.results import export

    store = _store(args, read_only=True)
    cfg = store.run_config(args.run)
    device_budgets(args)  # the runtime the point ships on (LiteRT with a board's budgets)
    device = args.board or args.max_flash_kb is not None or args.max_ram_kb is not None
    if device and args.format and not args.format.startswith("tflite"):
        raise UsageError(f"A board's flash and RAM were judged on the point's LiteRT file; export it as tflite, "
                         f"tflite-int8 or tflite-int4 (or leave --format out), not {args.format}.")
    picked = None  # the floor and budgets, when the point is the pick above them
    if args.point:
        point, store = settled_point(args, store, _find_point(store, args.run, args.point))
    else:
        if args.floor is None and args.max_drop is None:
            raise UsageError("Name a POINT key, or give --floor / --max-drop to export the best point above it.")
        choice, store = whole_split_pick(args, store)
        print(choice.message)
        if not choice.met_floor:  # exit 1, as `pick` does: the question was fine, the answer is "none"
            print("edgetrim: nothing meets the floor, so nothing was exported; lower the floor or name a point.",
                  file=sys.stderr)
            raise SystemExit(1)
        if not choice.met_budget:
            print("edgetrim: nothing at the floor meets the budget, so nothing was exported; raise the budget, "
                  "lower the floor, or name a point.", file=sys.stderr)
            raise SystemExit(1)
        point = store.get(choice.row["key"])
        picked = {"floor": round(choice.floor, 6), "judged_on": choice.judge, "runtime": choice.runtime,
                  **{k: v for k, v in (("board", args.board), ("max_flash_kb", args.max_flash_kb),
                                       ("max_ram_kb", args.max_ram_kb), ("max_latency_ms", args.max_latency_ms),
                                       ("max_bytes", args.max_bytes), ("objective", args.objective)) if v is not None}}
    model, data = runner.load_context(cfg["model"], cfg["data"])
    base = next((p.metrics for p in store.points(args.run) if p.spec.family == "baseline" and p.metrics), None)
    kept = store.artefacts(point.key)
    print(f"exporting {point.spec.label} from its kept files ..." if kept else
          f"{point.spec.label}: its kept files are gone (evicted, or measured on another machine); rebuilding it "
          "from its Spec ...", file=sys.stderr)
    result = export.export_point(point, model, data, args.format, args.output, baseline=base, runtime=args.runtime,
                                 kept=kept, progress=None if kept else _epoch_progress(),
                                 picked=picked)
    print(f"wrote {result.path} ({result.path.stat().st_size:,} bytes) and {result.card_path}; reloaded from disk "
          f"it scores {100 * result.reloaded_accuracy:.2f} % (stored point: {100 * result.stored_accuracy:.2f} %)")


def cmd_unpack(args) -> None:
    from core.inputs import data as D
    from core.results import export

    data = D.load_data(args.data)
    result = export.unpack(args.archive, args.to, args.output, data, progress=_epoch_progress())
    change = result.accuracy - result.archive_accuracy
    print(f"wrote {result.path} ({result.path.stat().st_size:,} bytes) and {result.card_path}; reloaded from disk it "
          f"scores {100 * result.accuracy:.2f} % on {data.name}'s test split (the archive's model in PyTorch: "
          f"{100 * result.archive_accuracy:.2f} %" + ("" if result.checked else
                                                      f"; {args.to} rounds the weights: {100 * change:+.2f} point") + ")")
