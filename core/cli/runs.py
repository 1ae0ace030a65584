"""The commands that read a run: `runs`, `table`, `front`, `per-layer`, `pick`; and `delete`, `retime`."""
from __future__ import annotations

import sys

from core.cli.common import _store, device_budgets, format_table, judge_on, with_device, with_floor, with_store
from core.cli.sweep import print_layer_comparison
from core.results import describe


def add(sub) -> None:
    from core.results import pareto

    p = with_store(sub.add_parser("runs", help="list the runs in the store"))
    p.set_defaults(func=cmd_runs)

    p = with_store(sub.add_parser("front", help="the Pareto front of a run"))
    p.add_argument("run")
    p.add_argument("--objective", default="size", choices=pareto.MINIMISED)
    p.add_argument("--also", choices=pareto.MINIMISED,
                   help="a third objective (e.g. --objective size --also latency)")
    p.add_argument("--by", default="none", choices=["none", "family"], help="one front per method family")
    p.add_argument("--runtime", default="onnxruntime", choices=list(pareto.RUNTIME_COLUMNS),
                   help="whose file accuracy, bytes and latency to use (the onnx / ort columns show them)")
    judge_on(p)
    p.set_defaults(func=cmd_front)

    p = with_store(sub.add_parser("per-layer", help="a per-layer search's front against the uniform grid's"))
    p.add_argument("run")
    p.add_argument("--objective", default="archive", choices=["archive", "size", "latency"])
    judge_on(p)
    p.set_defaults(func=cmd_layers)

    p = with_device(with_store(sub.add_parser("pick", help="the best point above an accuracy floor")))
    p.add_argument("run")
    with_floor(p)
    p.set_defaults(func=cmd_pick)

    p = with_store(sub.add_parser("table", help="all points of a run; --csv / --parquet to save"))
    p.add_argument("run")
    p.add_argument("--csv")
    p.add_argument("--parquet")
    p.set_defaults(func=cmd_table)

    p = with_store(sub.add_parser("delete", help="delete a run (points no other run uses go too)"))
    p.add_argument("run")
    p.set_defaults(func=cmd_delete)

    p = with_store(sub.add_parser("retime", help="time a run's points again from their kept files (those marked "
                                                 "busy; --all for every point)"))
    p.add_argument("run")
    p.add_argument("--all", action="store_true", help="every point, not only those timed on a busy machine")
    p.set_defaults(func=cmd_retime)


def cmd_layers(args) -> None:
    print_layer_comparison(_store(args, read_only=True).table(args.run), args.objective, args.judge_on)


def cmd_runs(args) -> None:
    df = _store(args, read_only=True).runs()
    print(format_table(df.to_dict("records")) if len(df) else "no runs yet: try `edgetrim sweep sweeps/default.yaml`")


def _num(v, scale: float = 1.0, digits: int = 4):
    """A rounded number, or None for missing values (None or NaN)."""
    return None if v is None or v != v else round(v * scale, digits)


BUSY_SHORT = {"ort_b1_busy": "ort", "torch_b1_busy": "torch", "et_b1_busy": "et", "lrt_b1_busy": "lrt",
              "cuda_b1_busy": "cuda"}


def _show(df) -> str:
    """The points of `df` as a table: test accuracy (reported) beside validation accuracy (judged) where recorded,
    and a 'busy' column naming the batch-1 latencies timed on a busy machine (left out of latency fronts)."""
    with_et = "pte_bytes" in df and df["pte_bytes"].notna().any()
    with_lrt = "tflite_bytes" in df and df["tflite_bytes"].notna().any()
    with_val = "val_accuracy" in df and df["val_accuracy"].notna().any()
    with_subset = "eval_subset" in df and df["eval_subset"].notna().any()
    busy = [c for c in BUSY_SHORT if c in df and df[c].eq(True).any()]
    return format_table([{
        "key": r["key"][:10], "family": r["family"], "label": r["label"],
        "acc %": _num(r["accuracy"], 100, 2), **({"val acc %": _num(r["val_accuracy"], 100, 2)} if with_val else {}),
        **({"val 95 % interval": _interval_text(r)} if with_subset else {}),
        "onnx KB": _num(r["onnx_bytes"], 1 / 1024, 1), "archive KB": _num(r["archive_bytes"], 1 / 1024, 1),
        "ort b1 ms": _num(r["ort_b1_ms"]), "torch b1 ms": _num(r["torch_b1_ms"]),
        **({"pte acc %": _num(r["pte_accuracy"], 100, 2), "pte KB": _num(r["pte_bytes"], 1 / 1024, 1),
            "et b1 ms": _num(r["et_b1_ms"])} if with_et else {}),
        **({"tflite acc %": _num(r["tflite_accuracy"], 100, 2), "tflite KB": _num(r["tflite_bytes"], 1 / 1024, 1),
            "lrt b1 ms": _num(r["lrt_b1_ms"]), "ram KB": _num(r.get("tflite_ram_bytes"), 1 / 1024, 1)}
           if with_lrt else {}),
        **({"busy": ", ".join(BUSY_SHORT[c] for c in busy if r.get(c) in (True,)) or "-"} if busy else {}),
    } for r in df.to_dict("records")])


def _interval_text(r) -> str:
    """'97.9-99.2 (n=1,000)' for a point scored on a subset, 'whole split' for one scored whole."""
    import pandas as pd

    if pd.isna(r.get("eval_subset")):
        return "whole split"
    return f"{100 * r['val_low']:.1f}-{100 * r['val_high']:.1f} (n={int(r['eval_subset']):,})"


def cmd_front(args) -> None:
    from core.results import pareto

    df = pareto.on_runtime(_store(args, read_only=True).table(args.run), args.runtime)
    objectives = ["accuracy", args.objective] + ([args.also] if args.also else [])
    split, note = pareto.judged_split(df, args.judge_on, args.runtime)
    fr = pareto.front(df, objectives, by=None if args.by == "none" else args.by, judge=split)
    print(f"accuracy judged on {pareto.SPLIT_NAMES[split]}" + (", reported on the test split (acc %)"
                                                                 if split == "val" else ""))
    if note:
        print(f"note: {note}")
    busy = pareto.busy_count(df, objectives)
    if busy:
        print(f"left out: {describe.n(busy, 'point')} whose latency was timed on a busy machine "
              "(marked in the busy column of `edgetrim table`)")
    if args.by != "none":
        for group, g in fr.groupby(args.by, sort=False):
            print(f"\n{args.by} = {group}: {describe.n(len(g), 'point')} on the front")
            print(_show(g))
    else:
        print(f"{len(fr)} of {describe.n(len(df), 'point')} on the ({', '.join(objectives)}) front")
        print(_show(fr))
    if fr.empty and len(df):
        print(f"No point of {args.run!r} has a value for every objective: a TorchScript or torch.export model has no "
              "compact archive, an int8 file no PyTorch latency, and latency is absent when not measured.")


def cmd_pick(args) -> None:
    store = _store(args, read_only=True)
    choice, store = whole_split_pick(args, store)
    df = store.table(args.run)
    print(choice.message)
    if choice.judge_note:
        print(f"note: {choice.judge_note}")
    print(_show(df[df["key"] == choice.row["key"]]))
    if not (choice.met_floor and choice.met_budget):
        raise SystemExit(1)
    fmt = f" --runtime {args.runtime}" if args.runtime in ("executorch", "litert") else ""
    print(f"export it: edgetrim export {args.run} {choice.row['key'][:10]}{fmt} -o <path>")


def whole_split_pick(args, store):
    """(the pick `args` ask for, judged and reported on the whole splits; the store): a run scored on a subset has
    its choice scored whole before it counts (core.engine.runner.confirmed_pick), in the store opened to write."""
    from core.engine import runner

    df = store.table(args.run)
    if df["eval_subset"].isna().all():
        return _pick(df, args), store
    store = _store(args)
    print("this run was scored on a subset of its splits: the pick is scored on the whole splits before it counts",
          file=sys.stderr)
    return runner.confirmed_pick(store, args.run, lambda table: _pick(table, args)), store


def settled_point(args, store, point):
    """`point` scored on the whole splits (settled now when it was scored on a subset)."""
    from core.engine import runner

    if point.metrics is None or point.metrics.eval_subset is None:
        return point, store
    store = _store(args)
    print(f"{point.spec.label} was scored on a subset: scoring it on the whole splits first", file=sys.stderr)
    runner.settle(store, args.run, [point.key])
    return store.get(point.key), store


def _pick(df, args):
    """The pick the floor, the budgets and the runtime of `args` ask for (shared by `pick` and `export`)."""
    from core.results import pareto

    max_bytes, max_ram = device_budgets(args)
    view = pareto.on_runtime(df, args.runtime)
    measured = pareto.measured_on(view, args.runtime)  # a run that never ran there says so before any floor
    base = pareto.baseline_accuracy(measured, args.judge_on, args.runtime)  # on the split the floor is judged on
    floor = pareto.resolve_floor(base, args.floor, args.max_drop)
    return pareto.pick(df, floor, args.objective, max_latency_ms=args.max_latency_ms, max_bytes=max_bytes,
                       runtime=args.runtime, judge=args.judge_on, max_ram_bytes=max_ram)


def cmd_table(args) -> None:
    df = _store(args, read_only=True).table(args.run)
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"wrote {len(df)} rows to {args.csv}")
    if args.parquet:
        df.to_parquet(args.parquet, index=False)
        print(f"wrote {len(df)} rows to {args.parquet}")
    if not (args.csv or args.parquet):
        print(_show(df[df["status"] == "ok"]))
        failed = df[df["status"] != "ok"]
        for r in failed.to_dict("records"):
            print(f"failed: {r['label']}: {r['error']}")


def cmd_delete(args) -> None:
    _store(args).delete_run(args.run)
    print(f"deleted run {args.run!r}")


def cmd_retime(args) -> None:
    """Time a run's points again from their kept files: those marked busy (all with --all); nothing is rebuilt."""
    from tqdm import tqdm

    from core.engine import runner

    store = _store(args)
    if not runner.busy_points(store, args.run, args.all):
        print(f"no point of run {args.run!r} has a latency marked busy; --all times every point again")
        return
    with tqdm(desc="re-timing", unit="point", file=sys.stderr, leave=False, disable=not sys.stderr.isatty()) as bar:
        def shown(done: int, total: int, message: str) -> None:
            bar.total, bar.n = total, done
            bar.refresh()

        r = runner.retime_run(store, args.run, args.all, shown)
    print(f"re-timed {r.done} point(s) of run {args.run!r} from their kept files"
          + (f"; {r.still_busy} still timed on a crowded machine (marked busy): run it again when the machine is "
             "quiet" if r.still_busy else "; none is marked busy now"))
    if r.gone:
        print(f"{len(r.gone)} point(s) have no kept files (evicted or measured elsewhere), so were not re-timed, e.g. "
              f"{r.gone[0]}; delete the run and sweep it again to measure them anew", file=sys.stderr)
