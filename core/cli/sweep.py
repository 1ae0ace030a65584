"""`edgetrim sweep`: a sweep file into the store, with the plan's estimate first and the point in flight shown."""
from __future__ import annotations

import dataclasses
import os
import re
import sys

from core.cli.common import _store, format_table, warn_skipped, with_device, with_store
from core.results import describe
from core.runtimes import measure as ME


def add(sub) -> None:
    from core.engine import sweep

    p = with_device(with_store(sub.add_parser("sweep", help="run a sweep file (grid or search) into the store")))
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
    busy = " (timed while other work crowds the cores: it may be far off)" if planned and busy_now() else ""
    return [f"{describe.n(len(planned), 'point')} to compute ({stored:,} in the store already): {what}",
            f"estimate: {describe.duration(train + measure)} here (training {describe.duration(train)}, measuring "
            f"{describe.duration(measure)}){f', on {workers} workers' if workers > 1 else ''}{busy}; "
            "the time left follows the pace as points finish"]


def busy_now() -> bool:
    """Whether other work crowds the cores now, as the estimate's training steps are timed (core.runtimes.measure)."""
    import torch

    return ME.oversubscribed(torch.get_num_threads())


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
    from core.inputs import device

    if args.verbose:
        import logging

        logger = logging.getLogger("edgetrim")
        logger.addHandler(logging.StreamHandler())
        logger.setLevel(logging.DEBUG)
    cfg = grid.load_config(args.config)
    if args.run:
        cfg = dataclasses.replace(cfg, run=args.run)
    if args.device:  # wins over the file's settings.device, and travels to every worker with the measure options
        cfg = dataclasses.replace(cfg, measure={**cfg.measure, "device": device.parse(args.device)})
    model = sweep.check(cfg, args.executor, args.workers)[0]  # refused before the store is opened (or created)
    warn_skipped(cfg.measure.get("runtimes") or ME.RUNTIMES, model)
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
    print_summary(cfg, result, store, sum(p.seconds for p in planned) / workers if planned else None)


def print_summary(cfg, result, store, estimate_s: float | None) -> None:
    """What a finished sweep says: its points and time (beside the estimate made before it ran), what was scored
    on a subset, the board's fits, a per-layer search against its grid, and the failures (exit 1)."""
    print(f"run {result.run!r}: {result.total} points, {result.computed} measured now, {result.reused} from the store, "
          f"{result.failed} failed, {result.seconds:.1f} s; store {store.path}")
    if estimate_s and result.computed:
        off = result.seconds / estimate_s - 1
        print(f"it took {result.seconds:,.0f} s; the estimate before it ran was {describe.duration(estimate_s)} (it took "
              f"{abs(100 * off):.0f} % {'longer' if off > 0 else 'less'})")
    if result.settled is not None:
        print(f"scored on {cfg.measure['subset']:,} seeded images of validation and of test each; "
              f"{describe.n(result.settled, 'point')} on a front then scored on the whole splits (the "
              "others show their 95 % interval; `edgetrim pick` scores its choice whole first)")
    if cfg.measure.get("board"):
        print(fits_line(store.table(cfg.run), cfg.measure["board"]))
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


def fits_line(df, board_name: str) -> str:
    """'fits on nano33ble (1,024 KB flash, 256 KB RAM): 5 of 7 points with a LiteRT file (RAM from tflite-micro;
    2 files TFLite Micro cannot run)'."""
    from core.runtimes import micro

    b = micro.board(board_name)
    ok = df[(df["status"] == "ok") & df["tflite_ram_bytes"].notna()]
    fit = sum(b.fits(f, r, s) for f, r, s in zip(ok["tflite_bytes"], ok["tflite_ram_bytes"], ok["tflite_ram_source"]))
    refused = sum(not micro.runs_in_tflm(s) for s in ok["tflite_ram_source"])
    sources = ", ".join(sorted({s.split(":")[0] for s in ok["tflite_ram_source"].dropna()})) or "not measured"
    return (f"fits on {b.name} ({b.flash_kb:,} KB flash, {b.ram_kb:,} KB RAM): {fit} of {len(ok)} points with a "
            f"LiteRT file (RAM from {sources}" + (f"; {refused} file(s) TFLite Micro cannot run" if refused else "")
            + f"); `edgetrim pick {df['run'].iloc[0] if len(df) else 'RUN'} --board {b.name} --floor ...` picks "
            "among them")


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
