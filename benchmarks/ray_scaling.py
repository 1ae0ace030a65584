"""How a sweep's throughput grows with the number of Ray workers: the real Ray executor, N local workers.

    python benchmarks/ray_scaling.py                          # every part, about 6 minutes on 2 cores
    python benchmarks/ray_scaling.py --variant cpu --workers 1 2 4
    python benchmarks/ray_scaling.py --variant costs          # ResNet-50's per-core figures only, under a minute
    python benchmarks/ray_scaling.py --variant sleep --workers 1 2 4 8 --sleep 0.5

Each N runs `core.engine.sweep.run_sweep(..., executor="ray")`, the path `edgetrim sweep --executor ray` takes
(core.engine.ray_executor.run_ray: the model and data put in Ray's object store once, one task per group of
points sharing a distill -> prune prefix, the driver recording every point), on a local Ray started here with
`num_cpus=N` (run_ray's own local Ray takes every core, so N is set by starting Ray first, which run_ray then
joins), 1 CPU per point, a fresh store and cache each time. Two variants of the same synthetic grid, and a third
part without Ray:

- cpu: LeNet-5 on the bundled digits, 2 pruning kinds x 12 ratios (2 epochs of fine-tuning) x 3 number
  formats, `measure: {latency: false}` (no timing noise); each point is real, CPU-bound work. The machine
  has 2 cores: N above 2 oversubscribes them, and what that does is part of the result.
- sleep: the same grid through the same executor, but inside each Ray worker (a Ray worker setup hook) the
  compression is a no-op and the measurement sleeps `--sleep` seconds and returns fixed numbers: no CPU, so
  the executor's own overhead and scaling (tasks, object store, the driver writing every point) shows up to
  N = 8 independent of the 2 cores. core/ is not changed; only the worker processes are patched.
- costs: not Ray: what one core here does for a 224-px ResNet-50 point (score its ONNX file, export it, decode
  ImageNet-sized JPEGs), the measured figures beside the assumptions of docs/scale.md.

Workers are started and warmed (torch and the runtimes imported) before each timed sweep; the start-up is
reported beside it. Results are added to benchmarks/results/ray_scaling.json, keyed by this run's time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# ---- defaults -----------------------------------------------------------------------------
MODEL, DATA = "lenet5", "digits"
AXES = {"prune": ["unstructured", "structured"],
        "prune_ratio": [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65],
        "finetune_epochs": [2], "quantize": ["fp32", "w4", "int8"]}   # 72 points + the baseline, 25 Ray tasks
WORKERS = {"cpu": [1, 2, 4], "sleep": [1, 2, 4, 8]}
SLEEP_S = 0.5                      # the sleep variant's seconds per point (no CPU)
OBJECT_STORE_BYTES = 256 * 2**20   # Ray's shared-memory store: the context is a few MB; kind to a shared machine
OUT = ROOT / "benchmarks" / "results" / "ray_scaling.json"


def sweep_config(run: str) -> dict:
    return {"run": run, "model": MODEL, "data": DATA, "axes": AXES, "measure": {"latency": False}}


def _sleep_instead(seconds: float):
    """A Ray worker setup hook: compression is a no-op and measuring sleeps and returns fixed numbers (no CPU)."""
    def hook():
        from core.methods import spec as S
        from core.runtimes import measure as ME

        def measure(model, data, deploy=None, **_):
            time.sleep(seconds)
            return ME.Metrics(accuracy=0.9, torch_accuracy=None, test_samples=len(data.test), onnx_bytes=1,
                              state_dict_bytes=1, archive_bytes=None, params=1, nonzero_params=1, macs=1)
        S.apply = lambda model, *a, **k: model
        S.compress = lambda model, *a, **k: model
        ME.measure = measure
    return hook


def _warm(ray, n: int) -> None:
    """Start N worker processes and import in each what a task needs, so the timed sweep measures the sweep."""
    @ray.remote(num_cpus=1)
    def warm():
        import core.engine.runner  # noqa: F401 (torch, ONNX, the runtimes)
        import core.runtimes.onnx_io  # noqa: F401
        time.sleep(2.0)  # held, so the N tasks land on N distinct workers
        return os.getpid()
    pids = set()
    for _ in range(3):
        pids |= set(ray.get([warm.remote() for _ in range(n)]))
        if len(pids) >= n:
            return


def cpu_seconds() -> tuple[dict[int, float], float]:
    """(CPU seconds of this process and every descendant (Ray's raylet and workers), by pid; the machine's busy CPU
    seconds since boot, from /proc/stat): what the sweep used, and what the machine's other work did."""
    import psutil

    ours = {}
    for p in [psutil.Process()] + psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            ours[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return ours, (sum(fields[:8]) - idle) / tick


def used(before, after, seconds: float) -> dict:
    """Cores the sweep's processes used, and cores the rest of the machine used, on average over `seconds`."""
    ours = sum(t - before[0].get(pid, 0.0) for pid, t in after[0].items())
    busy = after[1] - before[1]
    return {"cores used by the sweep": round(ours / seconds, 2),
            "cores used by other work": round(max(0.0, busy - ours) / seconds, 2)}


def task_bound(sizes: list[int], n: int, sleep_s: float) -> float:
    """The sleep variant's best points/s on N workers: its tasks (groups of `sizes` points, `sleep_s` each) handed out
    in order to the first free worker, nothing else costing time. Fewer tasks than workers leaves workers idle."""
    free = [0.0] * n
    for size in sizes:
        i = free.index(min(free))
        free[i] += size * sleep_s
    return sum(sizes) / max(free)


def run_one(variant: str, n: int, sleep_s: float, tmp: Path) -> dict:
    import ray

    from core.engine import grid, runner, sweep
    from core.results.store import Store

    here = tmp / f"{variant}-{n}"
    os.environ["EDGETRIM_CACHE"] = str(here / "cache")  # fresh: no student, no teacher logits, no kept files
    env = {"EDGETRIM_CACHE": os.environ["EDGETRIM_CACHE"],
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    runtime_env = {"env_vars": env}
    if variant == "sleep":
        runtime_env["worker_process_setup_hook"] = _sleep_instead(sleep_s)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False, object_store_memory=OBJECT_STORE_BYTES,
             runtime_env=runtime_env)
    try:
        _warm(ray, n)
        start_s = time.perf_counter() - t0
        cfg = grid.load_config(sweep_config(f"ray-{variant}-{n}"))
        runner.load_context(cfg.model, cfg.data)  # the driver's own load, outside the timing (cached per process)
        store = Store(here / "results.sqlite")
        before, t0 = cpu_seconds(), time.perf_counter()
        result = sweep.run_sweep(cfg, store, executor="ray", cpus_per_point=1)
        seconds = time.perf_counter() - t0
        cores = used(before, cpu_seconds(), seconds)
        points = store.points(cfg.run)
        store.close()
    finally:
        ray.shutdown()
    sizes = [len(g) for g in runner.groups(list(grid.expand(cfg)))]
    task_s = sum(p.seconds or 0 for p in points if p.status == "ok")
    return {"variant": variant, "N": n, "points": result.total, "measured": result.computed,
            "failed": result.failed, "errors": list(result.errors), "tasks": len(sizes),
            "seconds": round(seconds, 2), "points/s": round(result.computed / seconds, 3),
            "mean s per point in its task": round(task_s / max(1, result.computed), 3),
            "Ray start + warm-up s": round(start_s, 1), "load before (1 min)": round(load, 2), **cores,
            **({"ideal points/s (tasks)": round(task_bound(sizes, n, sleep_s), 2)} if variant == "sleep" else {})}


def per_core_costs(tmp: Path) -> dict:
    """What one core of this machine does on a 224-px ResNet-50 (random weights: speed does not depend on their
    values): scoring its fp32 ONNX file in ONNX Runtime on 1 thread, exporting that file, and decoding + resizing
    an ImageNet-sized JPEG with Pillow (a 500 x 375 photo-like image, about 95 KB), the figures docs/scale.md uses.
    Timed in this process's CPU seconds, not wall seconds, so other work on the machine does not slow them."""
    import io

    import numpy as np
    import onnxruntime as ort
    import torch
    import torchvision
    from PIL import Image

    torch.set_num_threads(1)
    model = torchvision.models.resnet50(num_classes=1000).eval()
    t0 = time.process_time()
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), tmp / "resnet50.onnx", dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}})
    export_s = time.process_time() - t0
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    session = ort.InferenceSession(str(tmp / "resnet50.onnx"), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((32, 3, 224, 224), dtype=np.float32)
    session.run(None, {"x": x[:2]})  # warm-up
    rates = []  # images per CPU second of this process (one thread): what a core does, however busy the machine
    for _ in range(2):
        t0 = time.process_time()
        session.run(None, {"x": x})
        rates.append(len(x) / (time.process_time() - t0))
    rng = np.random.default_rng(0)
    photo = Image.fromarray((rng.random((47, 63, 3)) * 255).astype(np.uint8)).resize((500, 375), Image.BICUBIC)
    noisy = np.clip(np.asarray(photo).astype(np.int16) + rng.integers(-20, 20, (375, 500, 3)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(noisy.astype(np.uint8)).save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    t0, n = time.process_time(), 300
    for _ in range(n):
        with Image.open(io.BytesIO(jpeg)) as im:
            im.load()
            np.asarray(im.convert("RGB").resize((224, 224), Image.BILINEAR))
    decode = n / (time.process_time() - t0)
    return {"resnet50 onnx bytes": (tmp / "resnet50.onnx").stat().st_size, "onnx export CPU s": round(export_s, 1),
            "onnxruntime fp32 img per CPU s (1 thread, batch 32)": round(max(rates), 2), "jpeg bytes": len(jpeg),
            "jpeg decode + resize img per CPU s (Pillow)": round(decode, 1),
            "load before (1 min)": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=["cpu", "sleep", "costs", "all"], default="all")
    ap.add_argument("--workers", type=int, nargs="*", help="the values of N (default: cpu 1 2 4, sleep 1 2 4 8)")
    ap.add_argument("--sleep", type=float, default=SLEEP_S, help="seconds per point of the sleep variant")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    import ray

    from core.cli import format_table

    tmp = Path(tempfile.mkdtemp(prefix="edgetrim-ray-scaling-"))
    t_all = time.perf_counter()
    rows = []
    costs = None
    if args.variant in ("costs", "all"):
        costs = per_core_costs(tmp)
        print(format_table([costs]), flush=True)
    for variant in [v for v in ("cpu", "sleep") if args.variant in (v, "all")]:
        first = None
        for n in args.workers or WORKERS[variant]:
            row = run_one(variant, n, args.sleep, tmp)
            first = first or row
            row["speedup vs N=1"] = round(row["points/s"] / first["points/s"], 2) if first["N"] == 1 else None
            rows.append(row)
            print(format_table([{k: v for k, v in row.items() if k != "errors"}]), flush=True)
    for variant in ("cpu", "sleep"):
        shown = [{k: v for k, v in r.items() if k != "errors"} for r in rows if r["variant"] == variant]
        if shown:
            print(format_table(shown))
    run = {"command": "python benchmarks/ray_scaling.py " + " ".join(sys.argv[1:]), "cores": os.cpu_count(),
           "ray": ray.__version__, "model": MODEL, "data": DATA, "axes": AXES, "sleep_s": args.sleep,
           "rows": rows, "resnet50 per core": costs, "seconds": round(time.perf_counter() - t_all)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # added beside the earlier runs (keyed by this run's time), never over them
    kept = json.loads(args.out.read_text()) if args.out.exists() else {}
    kept[time.strftime("%Y-%m-%d %H:%M", time.gmtime())] = run
    args.out.write_text(json.dumps(kept, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)  # the stores, caches and kept files of every N
    print(f"wrote {args.out}; {run['seconds']} s in all")


if __name__ == "__main__":
    main()
