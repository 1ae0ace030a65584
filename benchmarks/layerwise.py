"""Per-layer settings found by search against one ratio and one width for the whole model, on MNIST.

    python benchmarks/layerwise.py                  # LeNet-300-100 and LeNet-5 (about 6 min on 2 cores)

For each model, one run (`edgetrim sweep sweeps/layers-<model>.yaml` does the same): the uniform grid of
GRID_RATIOS x GRID_WEIGHTS (global magnitude pruning, then k-bit weights, no fine-tuning), then an NSGA-II search
of TRIALS trials over a ratio and a width per layer (core.engine.layerwise; seeded from the sensitivity scans, judged on
the validation split, no fine-tuning). Both are scored on MNIST's 10,000 official test images; size is the compact
archive's bytes. Printed and written to benchmarks/results/layerwise.csv: each front's hypervolume and the smallest
archive within 0.1 / 0.5 / 1 point of the baseline, with the search's own time.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.engine import grid, layerwise, sweep  # noqa: E402
from core.results.store import Store  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import write_csv  # noqa: E402

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
# ---- defaults: the sweep files hold the grid and the search (sweeps/layers-*.yaml) --------------------------
MODELS = ("lenet300", "lenet5")


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "layers.sqlite")
        for name in MODELS:
            cfg = grid.load_config(SWEEPS / f"layers-{name}.yaml")
            t0 = time.perf_counter()
            result = sweep.run_sweep(cfg, store)
            for r in layerwise.compare(store.table(cfg.run)):
                rows.append({"model": name, "points": r["points"], "n": r["n"], "hypervolume": r["hypervolume"],
                             **{k.replace("best", "archive KB"): (round(v / 1024, 1) if k.startswith("best")
                                                                  else round(100 * v, 2))
                                for k, v in r.items() if k.startswith(("best", "accuracy"))},
                             "search s": round(result.search_seconds, 1) if r["points"] != "uniform grid" else None,
                             "run s": round(time.perf_counter() - t0, 1)})
            print(format_table(rows[-2:]), flush=True)
            for r in layerwise.compare(store.table(cfg.run)):
                print(f"  {r['points']} at -0.5 pt: {r['label at -0.5 pt']}")
        store.close()
    print()
    print(format_table(rows))
    write_csv(rows, "layerwise")
    print("archive KB at -x pt: the smallest compact archive within x points of the baseline on the test split; "
          "wrote benchmarks/results/layerwise.csv")


if __name__ == "__main__":
    main()
