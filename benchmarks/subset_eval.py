"""A sweep scored on a seeded subset against the same sweep scored whole: time, the estimate made before each
ran, and the picks at 0.1 / 0.5 / 1 point below the baseline.

    python benchmarks/subset_eval.py            # lenet5_mnist on MNIST: 126 points, subsets of 1,000 images
    python benchmarks/subset_eval.py --quick    # mlp on digits: 18 points, subsets of 100 (a minute)

Both sweeps run in this process, one after the other, each into a fresh store with a fresh cache (the subset
one first, so the whole one never pays a cold start the other did not). The subset sweep's time includes scoring
its settled points on the whole splits; each pick on it is `edgetrim pick`'s (core.engine.runner.confirmed_pick),
whose own time is added too. Writes benchmarks/results/subset_eval.json and docs/results/subset-eval.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.engine import grid, runner, sweep  # noqa: E402
from core.results import pareto  # noqa: E402
from core.results.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FULL = {"model": "lenet5_mnist", "data": "mnist", "subset": 1000,
        "axes": {"prune_ratio": [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95], "quantize": ["fp32", "w8", "w6", "w4", "w3", "w2"],
                 "deploy": ["fp32", "int8", "int4"]}}
QUICK = {"model": "mlp", "data": "digits", "subset": 100,
         "axes": {"prune_ratio": [0.0, 0.5, 0.9], "quantize": ["fp32", "w4", "w2"], "deploy": ["fp32", "int8"]}}
DROPS = (0.1, 0.5, 1.0)
OBJECTIVES = ("size", "archive", "macs", "latency")  # latency: with --latency


def sweep_once(setup: dict, subset: int | None, folder: Path, latency: bool) -> dict:
    os.environ["EDGETRIM_CACHE"] = str(folder / "cache")
    measure = {"latency": latency, "budget_s": 0.05, **({"subset": subset} if subset else {})}
    cfg = grid.load_config({"run": "bench", "model": setup["model"], "data": setup["data"], "axes": setup["axes"],
                            "measure": measure})
    store = Store(folder / "store.sqlite")
    planned, _ = sweep.plan(cfg, store)
    estimate = sum(p.seconds for p in planned)
    t0, load = time.perf_counter(), os.getloadavg()[0]
    result = sweep.run_sweep(cfg, store, progress=lambda d, t, m: print(f"\r  {d}/{t} {m[:70]:70}", end="",
                                                                          file=sys.stderr))
    seconds = time.perf_counter() - t0
    print(file=sys.stderr)
    return {"store": store, "points": result.total, "seconds": seconds, "estimate_s": estimate,
            "settled": result.settled, "load": [round(load, 1), round(os.getloadavg()[0], 1)]}


def picks(store: Store, confirm: bool) -> tuple[dict, float]:
    out, t0 = {}, time.perf_counter()
    timed = store.table("bench")["ort_b1_ms"].notna().any()
    for objective in OBJECTIVES if timed else OBJECTIVES[:-1]:
        for drop in DROPS:
            def choose(table, drop=drop, objective=objective):
                return pareto.pick(table, pareto.baseline_accuracy(table) - drop / 100, objective)
            try:
                p = runner.confirmed_pick(store, "bench", choose) if confirm else choose(store.table("bench"))
            except pareto.PickError as e:
                out[f"{objective}@{drop}"] = {"error": str(e)}
                continue
            col = pareto.OBJECTIVES[objective][0]
            out[f"{objective}@{drop}"] = {"key": p.row["key"][:12], "label": p.row["label"],
                                          "val": p.row["judged_accuracy"], "test": p.row["accuracy"],
                                          "cost": p.row[col], "met_floor": bool(p.met_floor)}
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="mlp on digits: checks the script in a minute")
    ap.add_argument("--latency", action="store_true", help="time every point too (batch 1 and 32, both runtimes)")
    args = ap.parse_args()
    setup = QUICK if args.quick else FULL
    tmp = Path(tempfile.mkdtemp(prefix="edgetrim-subset-bench-"))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    part = sweep_once(setup, setup["subset"], tmp / "subset", args.latency)
    whole = sweep_once(setup, None, tmp / "whole", args.latency)
    part_picks, confirm_s = picks(part["store"], confirm=True)
    whole_picks, _ = picks(whole["store"], confirm=False)
    part_total = part["seconds"] + confirm_s
    same = {k: part_picks[k].get("key") == whole_picks[k].get("key") for k in whole_picks}
    same_cost = {k: part_picks[k].get("cost") == whole_picks[k].get("cost") and part_picks[k].get("met_floor")
                 for k in whole_picks}  # of equal cost, both at the floor: they differ within the subset's interval
    record = {"date": started, "model": setup["model"], "data": setup["data"], "subset": setup["subset"],
              "latency": args.latency, "load_subset": part["load"], "load_whole": whole["load"],
              "points": whole["points"], "whole_s": round(whole["seconds"], 1),
              "subset_s": round(part_total, 1), "settle_at_pick_s": round(confirm_s, 1),
              "settled_in_sweep": part["settled"], "speedup": round(whole["seconds"] / part_total, 2),
              "sweep_speedup": round(whole["seconds"] / part["seconds"], 2),
              "estimate_whole_s": round(whole["estimate_s"], 1), "estimate_subset_s": round(part["estimate_s"], 1),
              "estimate_error_whole": round(whole["estimate_s"] / whole["seconds"] - 1, 3),
              "estimate_error_subset": round(part["estimate_s"] / part["seconds"] - 1, 3),
              "same_picks": f"{sum(same.values())} of {len(same)}",
              "same_cost": f"{sum(same_cost.values())} of {len(same)}",
              "picks": {k: {"whole": whole_picks[k], "subset": part_picks[k]} for k in whole_picks}}
    print(json.dumps({k: v for k, v in record.items() if k != "picks"}, indent=1))
    for k, v in record["picks"].items():
        mark = "same" if same[k] else "same cost" if same_cost[k] else "DIFFERENT"
        print(f"{k:14} {mark:9} whole: {v['whole'].get('label', v['whole'].get('error'))} | "
              f"subset: {v['subset'].get('label', v['subset'].get('error'))}")
    if args.quick:
        return
    results = ROOT / "benchmarks" / "results" / "subset_eval.json"
    runs = json.loads(results.read_text()) if results.is_file() else {}
    runs["latency" if args.latency else "scoring"] = record
    results.write_text(json.dumps(runs, indent=1) + "\n")
    write_markdown(runs)


def write_markdown(runs: dict) -> None:
    (ROOT / "docs" / "results" / "subset-eval.md").write_text(
        "# Scoring on a subset, settling on the whole splits\n\n" + "\n".join(section(r) for r in runs.values()))


def _subset_pick(v: dict) -> str:
    whole, part = v["whole"], v["subset"]
    if whole.get("key") == part.get("key"):
        return "the same point"
    if whole.get("cost") == part.get("cost") and part.get("met_floor"):
        return (f"{part['label']}: the same cost, {100 * part['val']:.2f} % on validation against "
                f"{100 * whole['val']:.2f} % (a tie the subset's interval cannot split)")
    return f"{part.get('label', part.get('error'))}"


def section(r: dict) -> str:
    rows = "\n".join(
        f"| {k.split('@')[0]} | {k.split('@')[1]} | {v['whole'].get('label', '-')} | "
        f"{100 * v['whole'].get('test', float('nan')):.2f} | {_subset_pick(v)} |"
        for k, v in r["picks"].items())
    timed = "every point timed too" if r["latency"] else "no latency timed"
    return f"""## {r['points']} points, {timed}

`python benchmarks/subset_eval.py{' --latency' if r['latency'] else ''}` ({r['date']}, on this 2-core machine, load average
{r['load_subset'][0]}-{r['load_subset'][1]} during the subset sweep and {r['load_whole'][0]}-{r['load_whole'][1]} during the whole one, the sweep's own two
threads count in it: about 2 is this benchmark alone):
{r['model']} on {r['data']}, {r['points']} points (prune ratio x weight bits x deployed file, {timed}), each point
scored on the whole
validation and test splits, against the same sweep scored on {r['subset']:,} seeded images of each, its points on a
front and its baseline then scored whole ({r['settled_in_sweep']} of {r['points']}), and each pick below scored whole
before it counts (what `edgetrim pick` does; its time is counted in the subset column).

| | whole splits | subset, then settled |
| --- | --- | --- |
| sweep time | {r['whole_s']} s | {r['subset_s']} s (of which picks settling: {r['settle_at_pick_s']} s) |
| estimate before it ran | {r['estimate_whole_s']} s ({100 * r['estimate_error_whole']:+.0f} %) | {r['estimate_subset_s']} s ({100 * r['estimate_error_subset']:+.0f} %, against the sweep alone) |

Speed-up: **{r['speedup']}x** (the sweep alone: {r['sweep_speedup']}x). The same point picked in
{r['same_picks']} cases, a point of the same cost at the floor in {r['same_cost']}:

| pick by | floor (points below the baseline) | pick on the whole splits | its test accuracy % | pick on the subset run |
| --- | --- | --- | --- | --- |
{rows}
"""


if __name__ == "__main__":
    main()
