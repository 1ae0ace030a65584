"""Per-layer settings found by search (in the manner of AMC and HAQ): a sparsity and a bit width per layer.

One ratio and one width for the whole model waste bytes where a layer could lose more and
accuracy where it cannot. An Optuna multi-objective search (NSGA-II, or TPE) chooses, per weight
layer, a pruning ratio (0 to 98 % of its weights, in 1 % steps; or with `prune: structured`,
0 to 90 % of its channels, the classifier kept whole) and a weight width from BITS; each trial
is a Spec (`UnstructuredPrune` / `StructuredPrune(layer_ratios=...)` -> `WeightQuant(layer_bits=...)`)
measured and stored by the same runner as a grid point, so its points join the run's fronts
(family "per-layer"). The search optimises the deployed file's validation accuracy, never the
test split it is reported on (`judge_on: test` to search on the test split), against the
compact archive's bytes (or, over channels, the ONNX file's bytes or
batch-1 latency), under optional budgets (Optuna's constraints). Its first trials are seeded: the uniform grid's front on validation,
each point as the share of every layer its global pruning removed (so the search starts where
the grid ends), then the sensitivity scans: for each tolerance in SEED_DROPS, every layer at
the largest ratio and the smallest width that alone cost no more than that on validation.

    search: {space: per-layer, trials: 60, objectives: [accuracy, archive], max_bytes: 30000}
"""
from __future__ import annotations

import json
import time

import pandas as pd

from core.engine import runner as R
from core.inputs.train import accuracy
from core.methods import spec as S
from core.methods.prune import (
    StructuredPrune,
    UnstructuredPrune,
    classifier_layer_names,
    prunable_names,
    prunable_weights,
    sensitivity,
)
from core.methods.quantize import WeightQuant, fake_quantize
from core.results import describe, pareto
from core.results.store import Store, point_key, points_frame

RATIOS = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98)  # what the sensitivity scan tries; the search, any in 1 % steps
MAX_RATIO = 0.98
BITS = (8, 6, 5, 4, 3, 2)
SEED_DROPS = (0.002, 0.005, 0.01, 0.02, 0.05)  # sensitivity tolerances the first trials are built from
SEED = 0
MAX_CHANNELS = 0.9  # structured: at most this share of a layer's channels
SEARCH_KEYS = {"space", "trials", "sampler", "objectives", "max_bytes", "max_latency_ms", "finetune_epochs", "prune",
               "judge_on"}
# what each objective of a per-layer search reads, and which pruning can move it
OBJECTIVES = {"archive": ("unstructured", "structured"), "size": ("structured",), "latency": ("structured",)}


def why_not_search(search: dict, measure: dict) -> str | None:
    """One sentence on a per-layer search that cannot work as asked, or None."""
    kind = search.get("prune", "unstructured")
    objectives = search.get("objectives", ["accuracy", "archive"])
    if kind not in ("unstructured", "structured"):
        return f"search.prune is unstructured (zeros) or structured (channels), not {kind!r}."
    if (not isinstance(objectives, list) or len(objectives) != 2 or objectives[0] != "accuracy"
            or objectives[1] not in OBJECTIVES):
        return ("A per-layer search's objectives are [accuracy, archive], [accuracy, size] or [accuracy, latency], "
                f"not {objectives!r}.")
    if kind not in OBJECTIVES[objectives[1]]:
        return (f"Zeros and k-bit weights leave the dense ONNX file's {objectives[1]} as it is; search "
                f"{objectives[1]} over whole channels (search: {{prune: structured}}), or the archive.")
    if kind == "unstructured" and search.get("max_latency_ms"):
        return "Zeros do not make dense kernels faster: a latency budget needs search: {prune: structured}."
    if (objectives[1] == "latency" or search.get("max_latency_ms")) and measure.get("latency") is False:
        return "A latency objective or budget needs latency measured: drop measure: {latency: false}."
    return None


def why_not_model(model, search: dict) -> str | None:
    """One sentence on a model this per-layer search cannot run on (said before the grid runs), or None."""
    from core.methods.registry import why_not

    objective = search.get("objectives", ["accuracy", "archive"])[1]
    if objective == "archive" and model.arch is None:
        return (f"{model.name} is a fixed graph (TorchScript / torch.export), which has no compact archive: search "
                "it with search: {prune: structured, objectives: [accuracy, size]} on an nn.Module, or search the "
                "archive of an architecture plus state_dict.")
    if search.get("prune") == "structured":
        return why_not(model, StructuredPrune())
    return None


def budget_lines(df: pd.DataFrame, search: dict) -> list[str]:
    """What a person reads about a search's budgets: each one, and how many searched points are within it."""
    objective = search.get("objectives", ["accuracy", "archive"])[1]
    searched = df[(df["family"] == "per-layer") & (df["status"] == "ok")]
    lines = []
    for key, col, unit in (("max_bytes", "archive_bytes" if objective == "archive" else "onnx_bytes", "bytes"),
                           ("max_latency_ms", "ort_b1_ms", "ms")):
        if search.get(key):
            what = pareto.OBJECTIVE_NAMES["archive" if col == "archive_bytes" else "size" if unit == "bytes"
                                          else "latency"]
            within = int((searched[col] <= search[key]).sum())
            lines.append(f"budget: {what} <= {search[key]:,} {unit}; {within} of {len(searched)} searched points "
                         f"are within it (the search steers away from the others).")
    return lines


def layer_spec(ratios: dict[str, float], bits: dict[str, int], finetune_epochs: int = 0,
               kind: str = "unstructured") -> S.Spec:
    """The Spec of one per-layer setting: every layer's ratio (of weights, or of channels), then every width."""
    prune = None
    if any(ratios.values()):
        cls = UnstructuredPrune if kind == "unstructured" else StructuredPrune
        prune = cls(0.0, layer_ratios=tuple(ratios.items()), finetune_epochs=finetune_epochs)
    quant = None
    if bits:  # the commonest width is the config's own, the rest listed: the label reads "others" truly
        common = max(sorted(set(bits.values()), reverse=True), key=list(bits.values()).count)
        listed = tuple((n, b) for n, b in bits.items() if b != common)
        quant = WeightQuant(common, layer_bits=listed) if listed or common != 8 else None
    return S.Spec(prune=prune, quantize=quant)


def overall_ratio(module, ratios: dict[str, float]) -> float:
    """The share of all weights that per-layer `ratios` prune (layers not named: none)."""
    sizes = {n: w.numel() for n, w in prunable_weights(module)}
    return sum(ratios.get(n, 0.0) * k for n, k in sizes.items()) / max(1, sum(sizes.values()))


def bit_sensitivity(model, data, bits=BITS, split: str = "val") -> list[dict]:
    """Accuracy with each layer alone rounded to each width (the pruning scan's twin)."""
    d = getattr(data.adapted(model.input_shape), split)
    rows = []
    for name, _ in prunable_weights(model.module):
        for b in bits:
            m = model.copy_module()
            w = dict(prunable_weights(m))[name]
            w.data.copy_(fake_quantize(w.data, b))
            rows.append({"layer": name, "bits": b, "accuracy": accuracy(m, d)})
    return rows


def ratios_within(prune_rows: list[dict], layers: list[str], drop: float) -> dict[str, float]:
    """Each layer's largest ratio that, pruned alone, loses at most `drop` of validation accuracy (a sensitivity
    scan's reading; 0 when none does)."""
    base = next(r["accuracy"] for r in prune_rows if r["layer"] == "(none)")
    return {n: max([0.0] + [r["ratio"] for r in prune_rows
                            if r["layer"] == n and base - r["accuracy"] <= drop + 1e-12]) for n in layers}


def seeds(prune_rows: list[dict], bit_rows: list[dict], layers: list[str],
          weights: list[str] | None = None) -> list[tuple[dict, dict]]:
    """(ratios of `layers`, bits of `weights`) per tolerance in SEED_DROPS: each layer at the most it alone
    tolerates on validation."""
    base = next(r["accuracy"] for r in prune_rows if r["layer"] == "(none)")
    out = []
    for drop in SEED_DROPS:
        ratios = ratios_within(prune_rows, layers, drop)
        bits = {n: min([8] + [r["bits"] for r in bit_rows if r["layer"] == n and base - r["accuracy"] <= drop])
                for n in weights or layers}
        if (ratios, bits) not in out:
            out.append((ratios, bits))
    return out


def _cheap_uniform(spec: S.Spec, kind: str) -> bool:
    """Pruning of `kind` and k-bit rounding, no training: a grid point a per-layer setting can restate."""
    p, q = spec.prune, spec.quantize
    cls = UnstructuredPrune if kind == "unstructured" else StructuredPrune
    return (spec.distill is None and spec.deploy is None
            and (p is None or isinstance(p, cls) and not p.finetune_epochs and not p.layer_ratios
                 and getattr(p, "importance", "magnitude") in ("magnitude", "l2"))
            and (q is None or isinstance(q, WeightQuant) and not q.qat_epochs and not q.layer_bits))


def grid_seeds(model, data, df: pd.DataFrame, col: str, layers: list[str], kind: str) -> list[tuple[dict, dict]]:
    """The uniform grid's front on validation (accuracy against `col`), as per-layer settings: the share of each
    layer its pruning removed (global unstructured pruning reads back as a different share per layer;
    structured pruning is the same share everywhere), and its width in every layer. The search starts where the
    grid ends. Only grid points without training are restated (re-applying them is cheap)."""
    val = data.adapted(model.input_shape).val
    rows = []
    for _, r in df[(df["status"] == "ok") & df["family"].isin(["baseline", "pruning", "quantization", "combined"])
                   ].dropna(subset=[col]).iterrows():
        spec = S.Spec.from_json(r["spec_json"])
        if not _cheap_uniform(spec, kind):
            continue
        out = S.apply(model, spec, data).module
        if kind == "unstructured":
            ratios = {n: round(min(MAX_RATIO, float((w == 0).float().mean())), 2) for n, w in prunable_weights(out)}
        else:
            ratios = {n: round(min(MAX_CHANNELS, spec.prune.ratio if spec.prune else 0.0), 2) for n in layers}
        bits = spec.quantize.bits if spec.quantize is not None else 8
        rows.append(((accuracy(out, val), float(r[col])), (ratios, {n: bits for n in prunable_names(out)})))
    keep = pareto.front_indices([v for v, _ in rows], ["max", "min"])
    return [rows[i][1] for i in keep]


def run_layerwise(cfg, store: Store, progress, t0: float) -> R.SweepResult:
    """The per-layer search of a sweep file's `search: {space: per-layer}`; its points go into cfg.run."""
    import optuna

    opts = cfg.search
    reason = why_not_search(opts, cfg.measure)
    if reason:
        raise pareto.PickError(reason)
    objectives, kind = list(opts.get("objectives", ["accuracy", "archive"])), opts.get("prune", "unstructured")
    col = pareto.OBJECTIVES[objectives[1]][0]
    budgets = {c: v for c, v in ((("archive_bytes" if objectives[1] == "archive" else "onnx_bytes"),
                                  opts.get("max_bytes")), ("ort_b1_ms", opts.get("max_latency_ms"))) if v}
    trials, ft = int(opts["trials"]), int(opts.get("finetune_epochs", 0))
    judge = opts.get("judge_on", "val")
    model, data = R.load_context(cfg.model, cfg.data)
    weights = prunable_names(model.module)
    layers = weights if kind == "unstructured" else [
        n for n in weights if n not in classifier_layer_names(model.module, model.num_classes)]
    top = MAX_RATIO if kind == "unstructured" else MAX_CHANNELS
    val = data.adapted(model.input_shape).val
    if progress:
        progress(0, trials, "sensitivity scans (validation split) to seed the search")
    prune_rows = sensitivity(model, data, ratios=RATIOS[1:]) if kind == "unstructured" else [
        {"layer": "(none)", "ratio": 0.0, "accuracy": accuracy(model.module, val)}]
    bit_rows = bit_sensitivity(model, data)
    starts = (grid_seeds(model, data, store.table(cfg.run), col, layers, kind)
              + seeds(prune_rows, bit_rows, layers, weights))
    counts = {"computed": 0, "reused": 0, "failed": 0}
    errors: list[str] = []

    def measure(spec: S.Spec, position: int):
        key = point_key(model.fingerprint, data.fingerprint, spec, R.profile(cfg.measure))
        counts["reused" if R.covers(store.get(key), model, cfg.measure) else "computed"] += 1
        return R.run_group(store, cfg.run, cfg.model, cfg.data, [spec], [position], cfg.measure)[0]

    def objective(trial):
        ratios = {n: trial.suggest_float(f"ratio {n}", 0.0, top, step=0.01) for n in layers}
        bits = {n: trial.suggest_categorical(f"bits {n}", BITS) for n in weights}
        spec = layer_spec(ratios, bits, ft, kind)
        point = measure(spec, 10_000 + trial.number)
        if point.status != "ok":
            counts["failed"] += 1
            errors.append(point.error)
            raise optuna.TrialPruned(point.error)
        row = points_frame([point]).iloc[0]
        value = row[col]
        if judge == "test":
            val_acc = float(row["accuracy"])
        elif pd.notna(row["val_accuracy"]):  # the deployed file's, on the validation split: never the test split
            val_acc = float(row["val_accuracy"])
        else:  # a point stored before validation accuracy was recorded: its PyTorch module's, rebuilt
            val_acc = accuracy(S.apply(model, spec, data).module, val)
        for c, limit in budgets.items():
            trial.set_constraint(f"over {c}", float(row[c] - limit))  # feasible at 0 or below
        if progress:
            shown = describe.ms(value) if objectives[1] == "latency" else describe.size(value)
            progress(trial.number + 1, trials, f"trial {trial.number + 1}: {judge} {100 * val_acc:.2f} %, "
                                               f"{objectives[1]} {shown}")
        return val_acc, float(value)

    sampler = (optuna.samplers.NSGAIISampler(seed=SEED, population_size=min(20, max(4, trials // 3)))
               if opts.get("sampler", "nsga2") == "nsga2" else optuna.samplers.TPESampler(seed=SEED, multivariate=True))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler, study_name=cfg.run)
    unique = [json.loads(x) for x in dict.fromkeys(json.dumps(x, sort_keys=True) for x in starts)]
    for ratios, bits in unique[:trials]:
        study.enqueue_trial({**{f"ratio {n}": r for n, r in ratios.items()}, **{f"bits {n}": b for n, b in bits.items()}})
    R.run_group(store, cfg.run, cfg.model, cfg.data, [S.Spec()], [0], cfg.measure)  # the baseline, as in a grid
    study.optimize(objective, n_trials=trials, catch=())
    return R.SweepResult(cfg.run, trials, counts["computed"], counts["reused"], counts["failed"],
                         time.perf_counter() - t0, tuple(dict.fromkeys(errors)))


def hypervolume(df: pd.DataFrame, col: str, base_value: float, base_acc: float, window: float = 0.05,
                acc: str = "accuracy") -> float:
    """The area the front dominates in (accuracy, column `acc`, above base_acc - window) x (log10 of
    base_value / value: decades smaller or faster than the baseline), in points x decades: larger is better; one
    reference for every front."""
    import math

    pts = sorted(((math.log10(base_value / r[col]), r[acc] - (base_acc - window))
                  for _, r in df.iterrows() if r[col] > 0), reverse=True)
    area, best_y = 0.0, 0.0
    for x, y in pts:  # sweep from the most compressed: each step adds the strip its accuracy gains
        if y > best_y and x > 0:
            area += x * (y - best_y)
            best_y = y
    return 100 * area


FLOORS = (0.001, 0.005, 0.01)  # the drops from the baseline (0.1, 0.5 and 1 point) the comparison picks at


def compare(df: pd.DataFrame, objective: str = "archive", floors=FLOORS, judge: str = "val") -> list[dict]:
    """The uniform grid's points against the per-layer search's, each with the baseline: the hypervolume of
    each front, and the best point by `objective` at each floor (a drop from the baseline, in points), judged on
    `judge`'s split (`pareto.judged_split`: validation unless asked or missing; each row's 'split' says which) and
    reported on the test split ('accuracy at'; 'judged at' is the judged one). Latencies timed on a busy machine
    are left out ('busy'), the baseline's excepted: it is the reference every floor and factor starts from."""
    col = pareto.OBJECTIVES[objective][0]
    ok = df[df["status"] == "ok"].dropna(subset=["accuracy", col])
    split, _ = pareto.judged_split(ok, judge)
    ok = pareto.judged(ok, split)
    busy = pareto.busy_mask(ok, [col]) & (ok["family"] != "baseline")
    busy_family, ok = ok.loc[busy, "family"], ok[~busy]
    base = ok[ok["family"] == "baseline"]
    if base.empty:
        raise pareto.PickError("The comparison needs the run's baseline point.")
    base_acc, base_size = float(base["judged_accuracy"].iloc[0]), float(base[col].iloc[0])
    rows = []
    for name, part in (("uniform grid", ok[ok["family"] != "per-layer"]),
                       ("per-layer search", pd.concat([base, ok[ok["family"] == "per-layer"]]))):
        searched = (busy_family == "per-layer") if name == "per-layer search" else (busy_family != "per-layer")
        row = {"points": name, "n": len(part) - 1, "split": split,  # n: measured points besides the baseline
               "busy": int(searched.sum()),  # left out: latencies timed on a busy machine
               "hypervolume": round(hypervolume(pareto.front(part, ("accuracy", objective), judge=split), col,
                                                base_size, base_acc, acc="judged_accuracy"), 4)}
        for drop in floors:
            above = part[part["judged_accuracy"] >= base_acc - drop - 1e-12].sort_values(
                [col, "judged_accuracy"], ascending=[True, False])
            best = above.iloc[0]
            row[f"best at -{100 * drop:g} pt"] = best[col]
            row[f"accuracy at -{100 * drop:g} pt"] = best["accuracy"]
            row[f"judged at -{100 * drop:g} pt"] = best["judged_accuracy"]
            row[f"label at -{100 * drop:g} pt"] = best["label"]
        rows.append(row)
    return rows
