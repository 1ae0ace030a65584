"""edgetrim against the tools a user would otherwise reach for: same model, same data, same run.

    python benchmarks/peers.py                        # the digits samples (about 3 minutes)

1. int8: PyTorch's own `torch.ao.quantization.quantize_dynamic` (Linear layers, qint8) against
   edgetrim's ONNX Runtime int8 (static QDQ and dynamic): test accuracy, file bytes, batch-1
   latency on each tool's own runtime.
2. unstructured pruning: `torch.nn.utils.prune.global_unstructured` (L1) against edgetrim's
   global magnitude pruning at the same ratio: accuracy, file bytes (torch.save of the dense
   state_dict vs edgetrim's compact archive).
3. structured pruning: Torch-Pruning's default MagnitudePruner against edgetrim's
   StructuredPrune at the same ratio, both without fine-tuning: accuracy, parameters, latency.
Latencies in one table are timed in alternating rounds. Writes benchmarks/results/peers.csv.
"""
from __future__ import annotations

import copy
import io
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.inputs import data as D  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.inputs.train import accuracy  # noqa: E402
from core.methods import spec as S  # noqa: E402
from core.methods.deploy import Int8  # noqa: E402
from core.methods.prune import StructuredPrune, UnstructuredPrune, prunable_weights  # noqa: E402
from core.runtimes import archive, onnx_io, pytorch_io  # noqa: E402
from core.runtimes import measure as ME  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import write_csv  # noqa: E402

# ---- defaults -------------------------------------------------------------------------
PRUNE_RATIO = 0.8
STRUCTURED_RATIO = 0.5
ROUNDS, BUDGET_S = 3, 0.3


def saved_bytes(module: torch.nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.getbuffer().nbytes


def torch_ms(module, shape) -> float:
    return pytorch_io.time_module(module, shape, 1, torch.get_num_threads(), BUDGET_S).median_ms


def ort_ms(path, shape) -> float:
    return onnx_io.time_session(onnx_io.onnx_session(path), shape, 1, torch.get_num_threads(), BUDGET_S).median_ms


def alternate(fns: dict) -> dict:
    """Median of ROUNDS alternating timings of each zero-argument timer."""
    times = {k: [] for k in fns}
    for _ in range(ROUNDS):
        for k, fn in fns.items():
            times[k].append(fn())
    return {k: statistics.median(v) for k, v in times.items()}


def int8_rows(name, lm, data, tmp):
    test = data.adapted(lm.input_shape).test
    torch_q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(lm.module), {torch.nn.Linear}, dtype=torch.qint8)
    files = {}
    for label, cfg in (("fp32", None), ("static", Int8()), ("dynamic", Int8(mode="dynamic"))):
        files[label] = onnx_io.write_deployable(lm, cfg, tmp / f"{name}-{label}.onnx", calibration=data.adapted(
            lm.input_shape).train)
    ms = alternate({"torch fp32": lambda: torch_ms(lm.module, lm.input_shape),
                    "torch dynamic int8": lambda: torch_ms(torch_q, lm.input_shape),
                    **{f"ort {k}": (lambda p=p: ort_ms(p, lm.input_shape)) for k, p in files.items()}})
    rows = [
        {"model": name, "comparison": "int8", "tool": "PyTorch fp32 (reference)", "acc %": 100 * accuracy(lm.module, test),
         "bytes": saved_bytes(lm.module), "b1 ms": ms["torch fp32"], "runtime": "pytorch"},
        {"model": name, "comparison": "int8", "tool": "torch.ao quantize_dynamic (Linear)",
         "acc %": 100 * accuracy(torch_q, test), "bytes": saved_bytes(torch_q), "b1 ms": ms["torch dynamic int8"],
         "runtime": "pytorch"},
    ]
    for label in ("fp32", "static", "dynamic"):
        rows.append({"model": name, "comparison": "int8",
                     "tool": "ONNX fp32 (reference)" if label == "fp32" else f"edgetrim int8 {label} (ORT)",
                     "acc %": 100 * onnx_io.onnx_accuracy(files[label], test), "bytes": files[label].stat().st_size,
                     "b1 ms": ms[f"ort {label}"], "runtime": "onnxruntime"})
    return rows


def unstructured_rows(name, lm, data, tmp):
    import torch.nn.utils.prune as tprune

    test = data.adapted(lm.input_shape).test
    theirs = copy.deepcopy(lm.module)
    params = [(m, "weight") for m in theirs.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=PRUNE_RATIO)
    for m, p in params:
        tprune.remove(m, p)
    ours = S.compress(lm, UnstructuredPrune(PRUNE_RATIO), data)
    ours_archive = archive.write_archive(ours, tmp / f"{name}-ours.etz").stat().st_size
    zeros = lambda mod: sum(int((w == 0).sum()) for _, w in prunable_weights(mod))
    return [
        {"model": name, "comparison": f"{PRUNE_RATIO:.0%} unstructured", "tool": "torch.nn.utils.prune (global L1)",
         "acc %": 100 * accuracy(theirs, test), "bytes": saved_bytes(theirs), "zeros": zeros(theirs),
         "runtime": "torch.save (dense)"},
        {"model": name, "comparison": f"{PRUNE_RATIO:.0%} unstructured", "tool": "edgetrim UnstructuredPrune (global)",
         "acc %": 100 * accuracy(ours.module, test), "bytes": ours_archive, "zeros": zeros(ours.module),
         "runtime": "edgetrim archive"},
    ]


def structured_rows(name, lm, data):
    import torch_pruning as tp

    test = data.adapted(lm.input_shape).test
    theirs = copy.deepcopy(lm.module)
    last = [m for m in theirs.modules() if isinstance(m, torch.nn.Linear) and m.out_features == lm.num_classes]
    tp.pruner.MagnitudePruner(theirs, lm.example_input(1), importance=tp.importance.MagnitudeImportance(p=2),
                              pruning_ratio=STRUCTURED_RATIO, ignored_layers=last).step()
    theirs.eval()
    ours = S.compress(lm, StructuredPrune(STRUCTURED_RATIO), data)
    ms = alternate({"theirs": lambda: torch_ms(theirs, lm.input_shape),
                    "ours": lambda: torch_ms(ours.module, lm.input_shape)})
    return [
        {"model": name, "comparison": f"{STRUCTURED_RATIO:.0%} structured", "tool": "Torch-Pruning MagnitudePruner",
         "acc %": 100 * accuracy(theirs, test), "params": ME.count_params(theirs)[0], "b1 ms": ms["theirs"],
         "runtime": "pytorch"},
        {"model": name, "comparison": f"{STRUCTURED_RATIO:.0%} structured", "tool": "edgetrim StructuredPrune",
         "acc %": 100 * accuracy(ours.module, test), "params": ME.count_params(ours.module)[0], "b1 ms": ms["ours"],
         "runtime": "pytorch"},
    ]


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[n for n in M.sample_names()
                                                    if M.sample_card(n).get("data") == "digits"])
    args = ap.parse_args()
    os.environ.setdefault("EDGETRIM_CACHE", tempfile.mkdtemp(prefix="edgetrim-peers-"))
    data = D.load_digits()
    tmp = Path(tempfile.mkdtemp())
    rows: list[dict] = []
    for name in args.models:
        lm = M.load_sample(name)
        rows += int8_rows(name, lm, data, tmp) + unstructured_rows(name, lm, data, tmp) + structured_rows(name, lm, data)
        print(f"  {name} done", flush=True)
    cols = ["model", "comparison", "tool", "acc %", "bytes", "zeros", "params", "b1 ms", "runtime"]
    table = [{c: (round(r[c], 4) if isinstance(r.get(c), float) else r.get(c)) for c in cols} for r in rows]
    print(format_table(table))
    write_csv(table, "peers")


if __name__ == "__main__":
    main()
