"""The research frontier on MNIST: sparse variational dropout, Bayesian compression and soft weight-sharing at
growing training budgets, beside Deep Compression's rows (benchmarks/deep_compression.py).

    python benchmarks/frontier.py                                   # the three MNIST samples (see README)
    python benchmarks/frontier.py --models lenet300_mnist --methods vd --epochs 20
    python benchmarks/frontier.py --quick                           # LeNet-300-100, 2 epochs: checks that it runs

For each model, method and budget (epochs of retraining), in one run, through edgetrim's registered methods:
- vd: sparse variational dropout (Molchanov et al. 2017), pruned at log alpha > 3, its kept weights shared at
  each width in BITS (0: each layer's width from its posterior, Louizos et al. 2017) and the shared values tuned;
- vdft: the same, the kept weights retrained 10 epochs (zeros held) before sharing;
- vdkl3: vd with the KL weighed 3x (sparser, for the 1-point floor);
- bayes: the same with a group prior on every unit (Louizos et al. 2017): whole units removed too;
- soft: soft weight-sharing (Ullrich et al. 2017), 16 + 1 components, the paper's tau.
Every point is measured like any edgetrim point (its ONNX file in ONNX Runtime on the validation split and on
MNIST's official 10,000 test images; compression = fp32 ONNX bytes / compact archive bytes). Floors are judged on
validation and reported on test. Each point is appended to benchmarks/results/frontier.csv as it is measured (a
cut-off run keeps what it finished; points already there are skipped unless --again).
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.inputs.data import load_data  # noqa: E402
from core.methods import spec as S  # noqa: E402
from core.methods import variational as V  # noqa: E402
from core.methods.prune import prunable_weights  # noqa: E402
from core.methods.soft_share import SoftShare  # noqa: E402
from core.runtimes import measure as ME  # noqa: E402

# ---- defaults -------------------------------------------------------------------------
FLOORS = (0.1, 1.0)    # points below our baseline, on validation
BITS = (0, 3, 4, 5)    # widths the variational points are shared at (0: from the posterior)
VD = dict(lr=5e-4, augment_shift=1, retrain_epochs=2, tune_epochs=2)
FINETUNED = dict(retrain_epochs=10)  # the method "vdft": vd, then the kept weights retrained longer (zeros held)
HARDER = dict(kl_weight=3.0)          # the method "vdkl3": vd with the KL weighed 3x, sparser for a looser floor
BAYES = dict(noise_lr=3e-3)  # unit scales start at 1: a higher rate lets the unneeded ones reach zero within the budget
SOFT = dict(components=16, tau=5e-2, zero_share=0.999, augment_shift=1, tune_epochs=2)  # the paper's tau, pi_0, 17
PLANS = {  # epochs of retraining per method: the budgets of the accuracy-against-budget curve
    "lenet300_mnist": {"vd": (20, 60), "vdft": (20,), "bayes": (20,), "soft": (10, 40)},
    "lenet5_caffe_mnist": {"vd": (20,), "vdft": (20,), "vdkl3": (20,), "bayes": (20,), "soft": (40,)},
    "lenet5_mnist": {"vd": (20,), "vdft": (20,), "bayes": (20,), "soft": (10, 40)},
}
QUICK = {"vd": (2,), "vdft": (2,), "vdkl3": (2,), "bayes": (2,), "soft": (2,)}
PAPERS = {  # the field's figures as their authors' tables print them: (method, error before -> after %,
            # weights kept %, compression as the source counts it); the Bayesian papers' PDFs were not readable
            # here, so their rows are from their authors' repositories' README tables (docs/results/frontier.md)
    "lenet300_mnist": [("Sparse VD (Molchanov et al. 2017)", "1.64 → 1.92", 100 / 68, "68x fewer weights"),
                       ("Soft weight-sharing (Ullrich et al. 2017)", "1.89 → 1.94", 4.3, "64x")],
    "lenet5_caffe_mnist": [("Sparse VD (Molchanov et al. 2017)", "0.80 → 0.75", 100 / 280, "280x fewer weights"),
                           ("Sparse VD, bits counted (Louizos et al. 2017)", "→ 1.0", "", "228x"),
                           ("BC-GNJ (Louizos et al. 2017)", "→ 1.0", "", "361x"),
                           ("BC-GHS (Louizos et al. 2017)", "→ 1.0", "", "419x"),
                           ("Soft weight-sharing (Ullrich et al. 2017)", "0.88 → 0.97", 0.5, "162x")],
    "lenet5_mnist": [],
}
TITLES = {"lenet300_mnist": "LeNet-300-100", "lenet5_caffe_mnist": "LeNet-5-Caffe", "lenet5_mnist": "LeNet-5 (classic)"}
RESULTS = Path(__file__).resolve().parent / "results" / "frontier.csv"
FIELDS = ["model", "method", "epochs", "bits", "label", "val %", "test %", "weights kept %", "archive bytes",
          "onnx bytes", "compression", "seconds"]


def kept(model, original) -> float:
    """Non-zero weights over the original model's weights (a model whose units went has fewer to count)."""
    nonzero = sum(int((w != 0).sum()) for _, w in prunable_weights(model.module))
    return nonzero / sum(w.numel() for _, w in prunable_weights(original.module))


def row(name: str, method: str, epochs: int, bits: int | str, spec: S.Spec, out, model, data, base,
        seconds: float) -> dict:
    m = ME.measure(out, data, latency=False)
    return {"model": name, "method": method, "epochs": epochs, "bits": bits, "label": spec.label,
            "val %": round(100 * m.val_accuracy, 2), "test %": round(100 * m.accuracy, 2),
            "weights kept %": round(100 * kept(out, model), 2), "archive bytes": m.archive_bytes,
            "onnx bytes": m.onnx_bytes,
            "compression": round(base.onnx_bytes / m.archive_bytes, 1), "seconds": round(seconds)}


def curve_logger(name: str, method: str, budget: int):
    """A progress callback that prints each epoch and appends its validation accuracy and weights kept to
    frontier_epochs.csv: the accuracy-against-budget curve within one run."""
    pattern = re.compile(r"epoch (\d+)/\d+: val ([\d.]+), ([\d.]+) % of weights kept")

    def log(done: int, total: int, msg: str) -> None:
        print(f"      {msg}", flush=True)
        m = pattern.search(msg)
        if m:
            path = RESULTS.with_name(RESULTS.stem + "_epochs.csv")
            new = not path.exists()
            with open(path, "a", newline="") as f:
                w = csv.writer(f)
                if new:
                    w.writerow(["model", "method", "budget", "epoch", "val %", "weights kept %"])
                w.writerow([name, method, budget, m[1], round(100 * float(m[2]), 2), m[3]])
    return log


def variational_points(name, model, data, base, method: str, epochs: int, bits: tuple[int, ...]):
    """One variational training, shared at each width: the rows."""
    groups = V.Groups.UNITS if method == "bayes" else V.Groups.WEIGHTS
    extra = {**VD, **{"bayes": BAYES, "vdft": FINETUNED, "vdkl3": HARDER}.get(method, {})}
    cfg = V.VariationalDropout(groups=groups, epochs=epochs, **extra)
    t0 = time.perf_counter()
    sparse, widths = V.sparsify(model, cfg, data, progress=curve_logger(name, method, epochs))
    trained = time.perf_counter() - t0
    for b in bits:
        shared_cfg = V.VariationalDropout(groups=groups, epochs=epochs, bits=b, **extra)
        t1 = time.perf_counter()
        out = V.share(sparse, shared_cfg, widths, data)
        label = "posterior" if b == 0 else b
        yield row(name, method, epochs, label, S.Spec(quantize=shared_cfg), out, model, data, base,
                  trained + time.perf_counter() - t1)


def soft_points(name, model, data, base, epochs: int):
    cfg = SoftShare(epochs=epochs, **SOFT)
    t0 = time.perf_counter()
    out = S.compress(model, cfg, data, progress=lambda i, n, msg: print(f"      {msg}", flush=True))
    yield row(name, "soft", epochs, 4, S.Spec(quantize=cfg), out, model, data, base,
              time.perf_counter() - t0)


def done_rows() -> list[dict]:
    if not RESULTS.exists():
        return []
    with open(RESULTS, newline="") as f:
        return list(csv.DictReader(f))


def append(r: dict) -> None:
    new = not RESULTS.exists()
    with open(RESULTS, "a", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        if new:
            w.writeheader()
        w.writerow(r)


def run_model(name: str, plan: dict, methods: list[str], again: bool) -> None:
    model, data = M.load_sample(name), load_data(M.sample_card(name)["data"])
    base = ME.measure(model, data, latency=False)
    print(f"  {name}: baseline val {100 * base.val_accuracy:.2f} % test {100 * base.accuracy:.2f} %, "
          f"fp32 ONNX {base.onnx_bytes:,} B", flush=True)
    have = {(r["model"], r["method"], r["epochs"]) for r in done_rows()}
    for method in methods:
        for epochs in plan.get(method, ()):
            if not again and (name, method, str(epochs)) in have:
                print(f"    {method} {epochs} ep: already in {RESULTS.name}", flush=True)
                continue
            print(f"    {method} {epochs} ep", flush=True)
            points = (soft_points(name, model, data, base, epochs) if method == "soft" else
                      variational_points(name, model, data, base, method, epochs, BITS))
            for r in points:
                append(r)
                print(f"    {r['val %']:.2f} / {r['test %']:.2f} %  {r['compression']:6.1f}x  kept "
                      f"{r['weights kept %']} %  {r['label']}", flush=True)


def best_rows(name: str, rows: list[dict]) -> list[dict]:
    """The smallest archive within each floor of our baseline, judged on validation, reported on test."""
    model, data = M.load_sample(name), load_data(M.sample_card(name)["data"])
    base = ME.measure(model, data, latency=False)
    out = [{"model": TITLES[name], "floor (val)": "paper", "method": method, "error before → after (test %)": err,
            "weights kept %": round(k, 2) if k != "" else "", "compression": rate}
           for method, err, k, rate in PAPERS[name]]
    for drop in FLOORS:
        ok = [r for r in rows if float(r["val %"]) >= 100 * base.val_accuracy - drop - 1e-9]
        r = min(ok, key=lambda r: int(r["archive bytes"]), default=None)
        out.append({"model": TITLES[name], "floor (val)": f"within {drop} pt", "method": r["label"] if r else "none",
                    "error before → after (test %)": f"{100 - 100 * base.accuracy:.2f} → "
                    + (f"{100 - float(r['test %']):.2f}" if r else "-"),
                    "weights kept %": r["weights kept %"] if r else "",
                    "compression": f"{r['compression']}x" if r else ""})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(PLANS), choices=list(PLANS))
    ap.add_argument("--methods", nargs="+", default=["vd", "vdft", "vdkl3", "bayes", "soft"],
                    choices=["vd", "vdft", "vdkl3", "bayes", "soft"])
    ap.add_argument("--epochs", type=int, nargs="+", help="these budgets instead of each model's plan")
    ap.add_argument("--quick", action="store_true", help="LeNet-300-100 only, 2 epochs per method")
    ap.add_argument("--again", action="store_true", help="re-run points already in the results file")
    args = ap.parse_args()
    os.environ.setdefault("EDGETRIM_CACHE", tempfile.mkdtemp(prefix="edgetrim-frontier-"))
    global RESULTS
    if args.quick:
        RESULTS = RESULTS.with_name("frontier_quick.csv")
    t0 = time.perf_counter()
    models = ["lenet300_mnist"] if args.quick else args.models
    for name in models:
        plan = QUICK if args.quick else {m: tuple(args.epochs) for m in PLANS[name]} if args.epochs else PLANS[name]
        run_model(name, plan, args.methods, args.again)
    rows = done_rows()
    print("\n## Every point (val / test %, compression = fp32 ONNX / archive)\n")
    print(format_table([{k: r[k] for k in FIELDS} for r in rows if r["model"] in models]))
    print("\n## The smallest archive within each floor (judged on validation, reported on test)\n")
    print(format_table([b for name in models for b in best_rows(name, [r for r in rows if r["model"] == name])]))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
