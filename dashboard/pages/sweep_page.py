"""Sweep: choose the axes, see how many points that is, run it in the background and watch it fill in.

Every choice of the form is kept under an app-owned key. After a page reload (a new
session) the form, the total and the progress are rebuilt from the job's own record:
the sweep file dashboard/jobs.py wrote beside its pid file.
"""
from __future__ import annotations

import json
import os

import pandas as pd
import streamlit as st

from core import cache_dir
from core.engine import grid, layerwise
from core.methods import deploy, lottery, quantize
from core.results import describe
from core.runtimes import measure
from dashboard import cache, fmt, jobs, state

WEIGHTS_HELP = ("How the weights are rounded, one point per choice: " + "; ".join(
    f"{k}: {v}" for k, v in quantize.TOKEN_HELP.items()) + ". fp32 keeps them as trained.")
FILES_HELP = ("The file each point ships as, run in each runtime chosen below, one point per choice: " + "; ".join(
    f"{k}: {v}" for k, v in deploy.TOKEN_HELP.items()) + ". With 4-bit weights and an int4 file, the rounded weights "
    "ship as 4-bit codes a runtime executes.")
RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime (CPU)", "executorch": "ExecuTorch (.pte, XNNPACK)",
                 "litert": "LiteRT (.tflite)",
                 "pytorch": "PyTorch eager", "onnxruntime-cuda": "ONNX Runtime (CUDA GPU)"}
THREADS = [0] + [t for t in (1, 2, 4, 8) if t <= (os.cpu_count() or 1)]  # 0: every core
RATIOS = [0, 25, 50, 75, 90, 95]          # % shown; fractions go to core
WIDTHS = [1.0, 0.75, 0.5, 0.25]
STUDENTS = ["mlp", "mlp@0.5", "lenet5", "lenet5@0.5", "lenet5_caffe", "lenet5_caffe@0.5", "resnet18_small@0.25",
            "tv:mobilenet_v3_small@0.5"]  # students of other architectures (core.engine.grid.parse_student)
COLUMNS = {"label": "Point", "status": "Status", "accuracy": "Accuracy (%)", "onnx_bytes": "ONNX (KB)",
           "archive_bytes": "Archive (KB)", "ort_b1_ms": "ORT b1 (ms)", "torch_b1_ms": "PyTorch b1 (ms)",
           "pte_bytes": ".pte (KB)", "et_b1_ms": "ExecuTorch b1 (ms)", "tflite_bytes": ".tflite (KB)",
           "lrt_b1_ms": "LiteRT b1 (ms)", "eval_subset": "Scored on"}  # the label
# names the point's family already; short headers leave the label its room


def _restore(record: dict) -> None:
    """Put a job's sweep file back into the form's app-owned keys."""
    axes, settings = record.get("axes") or {}, record.get("settings") or {}
    values = {"sweep.run": record.get("run"), "sweep.widths": axes.get("student_width"),
              "sweep.students": axes.get("student"), "sweep.alone": "alone" in axes.get("student_training", []),
              "sweep.distill_shift": (settings.get("distill") or {}).get("augment_shift"),
              "sweep.kinds": axes.get("prune"), "sweep.importance": axes.get("prune_importance"),
              "sweep.ratios": [round(100 * r) for r in axes["prune_ratio"]] if axes.get("prune_ratio") else None,
              "sweep.finetune": (axes.get("finetune_epochs") or [None])[0], "sweep.quant": axes.get("quantize"),
              "sweep.deploy": axes.get("deploy"),
              "sweep.distill_epochs": (settings.get("distill") or {}).get("epochs"),
              "sweep.weight_epochs": settings.get("qat_epochs"),
              "sweep.latency": (record.get("measure") or {}).get("latency"),
              "sweep.runtimes": (record.get("measure") or {}).get("runtimes"),
              "sweep.threads": (record.get("measure") or {}).get("threads") or 0,
              "sweep.subset": (record.get("measure") or {}).get("subset") or 0,
              "sweep.layer_trials": (record.get("search") or {}).get("trials", 0)}
    for key, value in values.items():
        if value is not None:
            state.put(key, value)


def _config() -> dict:
    model_json, data_source = cache.current_sources()
    c1, c2, c3 = st.columns(3)
    run = state.widget(c1.text_input, "Run name", key="sweep.run", default=f"{cache.model_label(model_json)}-sweep")
    widths = state.widget(c1.multiselect, "Student widths", key="sweep.widths", default=[1.0], options=WIDTHS,
                          format_func=lambda w: "1.0 (the model itself)" if w == 1.0 else f"{w:g}",
                          help="Below 1.0 a narrower student (that share of the channels) is trained on the "
                               "model's soft labels before the other steps; 1.0 keeps the model.")
    students = state.widget(c1.multiselect, "Students of other architectures", key="sweep.students", default=[],
                            options=STUDENTS, help="Each is trained on the model's soft labels, then goes through "
                                                   "the same pruning and weights as the model; @0.5 = at half "
                                                   "width. Students are their own family on Trade-offs.")
    alone = state.widget(c1.checkbox, "Also train each student alone (hard labels)", key="sweep.alone",
                         default=False, help="The baseline that shows what the teacher's soft labels bought.")
    kinds = state.widget(c2.multiselect, "Pruning", key="sweep.kinds", default=["unstructured"],
                         options=list(grid.PRUNE_KINDS),
                         help="unstructured zeroes single weights; structured removes whole channels and neurons; "
                              "lottery prunes in 5 rounds, retraining the survivors after each (a sample's are "
                              "rewound to 2 % into its training; your own model's keep their values and restart "
                              "the learning rate). Slow: each round retrains.")
    importance = state.widget(c2.multiselect, "What is pruned first", key="sweep.importance",
                              default=["magnitude"], options=list(grid.PRUNE_IMPORTANCE),
                              format_func={"magnitude": "smallest weights (magnitude)",
                                           "taylor": "least used (Taylor: |w x gradient|)",
                                           "hessian": "least curvature (Hessian; structured only)"}.get,
                              help="How weights or channels are ranked before the least important are removed: "
                                   "by size, or by how much the training loss would change without them "
                                   "(gradients on training batches). Each choice is its own point.")
    ratios = state.widget(c2.multiselect, "Pruning ratios", key="sweep.ratios", default=[0, 50, 75, 90],
                          options=RATIOS, format_func=lambda r: f"{r} %",
                          help="Share of the weights (or channels) removed; 0 % = no pruning.")
    finetune = state.widget(c2.number_input, "Fine-tuning epochs after pruning", min_value=0, max_value=50, step=1,
                            key="sweep.finetune", default=2,
                            help="Passes over the training split after pruning to win back accuracy; 0 = none. "
                                 "For lottery tickets: the epochs of each of the 5 rounds (0: a sample's own "
                                 "recipe, e.g. 20 epochs for LeNet-300-100).")
    trials = state.widget(c2.number_input, "Per-layer search (trials)", min_value=0, max_value=500, step=10,
                          key="sweep.layer_trials", default=0,
                          help="After the grid, an NSGA-II search over a pruning ratio and a bit width per layer "
                               "(seeded from the sensitivity scans, judged on validation); its points are the "
                               "'per-layer' family on Trade-offs, beside the grid's. 0 = no search.")
    quant = state.widget(c3.multiselect, "Weights", key="sweep.quant", default=["fp32", "w4", "w2"],
                         options=list(quantize.CHOICES), format_func=quantize.token_name, help=WEIGHTS_HELP)
    files = state.widget(c3.multiselect, "File formats", key="sweep.deploy", default=["fp32", "int8"],
                         options=list(deploy.TOKENS), format_func=lambda t: f"{t} file", help=FILES_HELP)
    weight_epochs = state.widget(c3.number_input, "Weight training epochs", min_value=1, max_value=200, step=1,
                                 key="sweep.weight_epochs", default=3,
                                 help="Epochs of the weight formats that train: qat (quantization-aware training), "
                                      "dc (tuning the shared values), soft, vd and bayes (their retraining). The "
                                      "variational ones (vd, bayes) prune little in a few epochs: give them 10 or more "
                                      "on big data, more on small.")
    distill_epochs = state.widget(c3.number_input, "Student training epochs", min_value=1, max_value=200, step=1,
                                  key="sweep.distill_epochs", default=30,
                                  help="Epochs to train each student (widths below 1.0, other architectures).")
    shift = state.widget(c3.number_input, "Student image shift (pixels)", min_value=0, max_value=4, step=1,
                         key="sweep.distill_shift", default=2,
                         help="Random translations while a student trains. With a big teacher each shifted batch "
                              "costs a teacher pass; 0 reuses one stored pass over the training images.")
    latency = state.widget(c3.checkbox, "Measure latency", key="sweep.latency", default=True,
                           help="Time every point on each runtime chosen (adds a second or so per point).")
    runtimes = state.widget(c3.multiselect, "Runtimes", key="sweep.runtimes", default=list(measure.RUNTIMES),
                            options=list(RUNTIME_NAMES), format_func=RUNTIME_NAMES.get,
                            help="Where each point runs: each writes its own file (ExecuTorch a .pte, LiteRT a "
                                 ".tflite, a few seconds per point), scores it on the test split and times it. "
                                 "PyTorch runs fp32 models only; fp16 has no ExecuTorch or LiteRT form, dynamic "
                                 "int8 no ExecuTorch form.")
    threads = state.widget(c3.selectbox, "Threads (device profile)", key="sweep.threads", default=0, options=THREADS,
                           format_func=lambda t: "all cores" if t == 0 else f"{t} thread{'s' * (t > 1)}",
                           help="The CPU threads every runtime may use. 1 thread approximates a small board; "
                                "a profile is part of each point, so runs under two profiles sit side by side.")
    subset = state.widget(c3.number_input, "Score on a subset first (images; 0: whole splits)", min_value=0,
                          max_value=1_000_000, step=500, key="sweep.subset", default=0,
                          valid=lambda n: n == 0 or n >= grid.MIN_SUBSET,
                          help="Each point is scored on this many seeded validation and test images, with a 95 % "
                               "interval; the baseline and the points on a front are then scored on the whole "
                               "splits, and a pick is always scored whole before it counts. Saves most scoring on "
                               "big data; 0 scores every point whole.")
    for line in measure.skipped_runtimes(runtimes or ["onnxruntime"]):
        st.warning(f"{RUNTIME_NAMES.get(line.split()[0], line.split()[0])} will be skipped: {line.split(': ', 1)[1]}")
    has_students = bool(students) or any(w != 1.0 for w in widths)
    training = ["distilled", "alone"] if alone and has_students else ["distilled"]
    settings = {"distill": {"epochs": int(distill_epochs), "augment_shift": int(shift)}, "device": state.device(),
                "qat_epochs": int(weight_epochs)}
    if "lottery" in kinds:
        c2.caption("Lottery tickets retrain from early weights in each of 5 rounds: with a few epochs per round they "
                   "stay below plain pruning; they reach the baseline with a full training per round (0 epochs "
                   "above, for a sample).")
    if "lottery" in kinds and lottery.recipe(cache.model(model_json)) is None:  # no training run to rewind to
        settings["lottery"] = {"rewind": "lr", "epochs": max(1, int(finetune))}
    search = {"search": {"space": "per-layer", "trials": int(trials)}} if trials else {}
    return {"run": run, "model": json.loads(model_json), "data": data_source, **search,
            "axes": {"student_width": widths, "student": students, "student_training": training, "prune": kinds,
                     "prune_importance": importance or ["magnitude"], "prune_ratio": [r / 100 for r in ratios],
                     "finetune_epochs": [int(finetune)], "quantize": quant, "deploy": files},
            "settings": settings,
            "measure": {"latency": latency, "budget_s": 0.05, "runtimes": runtimes or ["onnxruntime"],
                        **({"threads": int(threads)} if threads else {}),
                        **({"subset": int(subset)} if subset else {})}}


def _expected(record: dict) -> tuple[int, set[str]]:
    """(total, spec hashes) of a job's own sweep file."""
    cfg = grid.load_config(record)
    trials = int(cfg.search.get("trials", 0)) if cfg.search else 0
    if cfg.search and cfg.search.get("space") != "per-layer":
        return trials + 1, set()
    hashes = {s.hash for s in grid.expand(cfg)}
    return len(hashes) + trials, set() if trials else hashes  # a search's points are not known before it runs


def _table(df: pd.DataFrame) -> pd.DataFrame:
    shown = {"pte_bytes": "pte_bytes", "et_b1_ms": "pte_bytes", "tflite_bytes": "tflite_bytes",
             "lrt_b1_ms": "tflite_bytes"}  # a runtime's columns, shown when some point has its file
    columns = [c for c in COLUMNS if (c not in shown or df[shown[c]].notna().any())
               and (c != "eval_subset" or df["eval_subset"].notna().any())]
    out = df[columns].copy()
    out["accuracy"] = (100 * out["accuracy"]).round(2)
    for col in {"onnx_bytes", "archive_bytes", "pte_bytes", "tflite_bytes"} & set(columns):
        out[col] = (out[col] / 1024).round(1)
    for col in {"ort_b1_ms", "torch_b1_ms", "et_b1_ms", "lrt_b1_ms"} & set(columns):  # an untimed point says so, not 'None'
        out[col] = out[col].map(lambda v: "not timed" if v is None or v != v else f"{v:.3f}")
    if "eval_subset" in columns:  # a subset point: its images and its validation accuracy's 95 % interval
        out["eval_subset"] = [f"{int(n):,} images, val {100 * lo:.1f}-{100 * hi:.1f} %" if n == n and n is not None
                              else "whole splits" for n, lo, hi in zip(df["eval_subset"], df["val_low"], df["val_high"])]
    return out.rename(columns=COLUMNS)


def _progress(run: str) -> None:
    record = jobs.config(run)
    running = jobs.is_running(run)
    if not running and st.session_state.get("sweep.polling") == run:
        st.session_state.pop("sweep.polling")
        st.rerun()  # the job ended: one full rerun, which stops the polling
    try:
        df = cache.run_table(run)
    except ValueError:
        df = None
    try:
        total, hashes = _expected(record) if record is not None else (0, set())
    except ValueError:  # a record this version cannot read: count what is stored
        record = None
    if record is not None:
        if df is not None and hashes:
            df = df[df["spec_hash"].isin(hashes)]
    else:  # a run stored by the command line: no job record, so no total to compare against
        total, hashes = (0 if df is None else len(df)), set()
    done = 0 if df is None else len(df)
    failed = 0 if df is None else int((df["status"] != "ok").sum())
    search = (record or {}).get("search") or {}
    trials = int(search.get("trials", 0)) if search.get("space") == "per-layer" else 0
    # a search may propose a setting twice (one point): it is done once some trial landed and the job ended
    finished = done >= total or trials and done > total - trials
    status = "running" if running else "finished" if finished else "stopped"
    st.progress(min(1.0, done / max(total, 1)),
                text=f"Run {run}: {done} of {'up to ' * bool(trials)}{total} points stored · {status}"
                     + (f" · {failed} failed" if failed else ""))
    if status == "finished" and record is not None:  # what the sweep said at its end: its time against the estimate
        said = [line for line in jobs.log_tail(run, 12).splitlines() if line.startswith(("it took", "scored on"))]
        for line in said:
            st.caption(line[0].upper() + line[1:] + ".")
    if running and st.button("Stop after the point in flight", key="stop_sweep"):
        jobs.stop(run)
    if status == "stopped" and record is not None:
        st.caption("The sweep process ended before all its points were stored; run it again to resume "
                   "(points already stored are kept). The end of its log:")
        st.code(jobs.log_tail(run).replace(str(cache_dir()), "…") or "(empty)", language=None)  # no cache paths
    if df is not None and len(df):
        st.dataframe(_table(df), hide_index=True, width="stretch", height=min(360, 35 * (len(df) + 1) + 3),
                     column_config={"Point": st.column_config.TextColumn(width="large")})
    if df is not None and trials and (df["family"] == "per-layer").any() and (df["family"] == "baseline").any():
        _layer_comparison(df, search.get("objectives", ["accuracy", "archive"])[1])


def _layer_comparison(df: pd.DataFrame, objective: str) -> None:
    """The per-layer search against the uniform grid, as `edgetrim per-layer RUN` prints it."""
    show = fmt.ms if objective == "latency" else fmt.size
    rows = [{"points of": r["points"], "measured": r["n"], "hypervolume": f"{r['hypervolume']:.3f}",
             **{f"smallest within {100 * d:g} pt": f"{show(r[f'best at -{100 * d:g} pt'])} "
                                                   f"({fmt.pct(r[f'accuracy at -{100 * d:g} pt'])})"
                for d in layerwise.FLOORS}} for r in layerwise.compare(df, objective)]
    st.markdown("**The per-layer search against the uniform grid** (test split)")
    st.table(pd.DataFrame(rows).set_index("points of"))
    st.caption("Hypervolume: the area each front covers in accuracy (the 5 points below the baseline) x decades "
               "smaller than the baseline; larger is better. Both fronts are on Trade-offs (family 'per-layer').")


def main() -> None:
    st.title("Sweep")
    if not st.session_state.get("sweep.restored"):  # a new session (a reload): the latest job's own record
        st.session_state["sweep.restored"] = True
        job = st.session_state.get("active_run") or jobs.latest()
        record = jobs.config(job) if job else None
        if record is not None:
            _restore(record)
            st.session_state["active_run"] = job
    raw = _config()
    try:
        cfg = grid.load_config(raw)
        total = len(grid.expand(cfg))
    except ValueError as e:
        st.error(fmt.one_sentence(e))
        return
    trials = f", then **{describe.n(cfg.search['trials'], 'per-layer trial')}**" if cfg.search else ""
    try:
        todo, stored, seconds = cache.sweep_plan(json.dumps(raw, sort_keys=True))
        about = (f": {describe.n(todo, 'point')} to compute, **{describe.duration(seconds)}** here"
                 f"{' before the search' if cfg.search else ''}" if todo else ": every point is in the store already")
        about += f" ({stored:,} in the store already)" if stored and todo else ""
    except Exception as e:  # an estimate that cannot be made is said, never a reason not to run
        about = f" (no time estimate: {fmt.one_sentence(e)})"
    st.markdown(f"**{describe.n(total, 'point')}** (baseline included){trials}{about}. Points already in the store "
                "are not recomputed.")
    c1, c2 = st.columns(2)
    executor = state.widget(c1.radio, "Executor", key="sweep.executor", default="local", options=["local", "ray"],
                            horizontal=True, help="ray: points become Ray tasks (a local Ray, or a cluster address)")
    address = state.widget(c2.text_input, "Ray address (empty: start a local Ray)", key="sweep.ray_address",
                           default="", disabled=executor != "ray")
    if st.button("Run sweep", type="primary", key="run_sweep"):
        try:
            jobs.start(cfg.to_dict(), executor, address.strip() or None)
            run = jobs.safe_name(cfg.run)
            st.session_state["active_run"] = run
            state.put("tradeoffs.runs", [run])  # Trade-offs opens on the sweep just started
        except ValueError as e:
            st.error(fmt.one_sentence(e))
    run = st.session_state.get("active_run")
    if run is None and (jobs.is_running(cfg.run) or cfg.run in set(cache.runs()["run"])):
        run = cfg.run  # a run of this name, started elsewhere or stored by the command line
    if run:
        running = jobs.is_running(run)
        if running:
            st.session_state["sweep.polling"] = run
        st.fragment(run_every=1.0 if running else None)(_progress)(run)


if __name__ == "__main__":
    main()
