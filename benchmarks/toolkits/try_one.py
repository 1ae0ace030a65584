"""Run one tool's `compress` on one sample at one floor and score what it wrote (no latency): a quick check.

    python benchmarks/toolkits/try_one.py with_nncf lenet5_caffe_mnist              # what it makes with no floor
    python benchmarks/toolkits/try_one.py with_nncf lenet5_caffe_mnist --drop 0.5   # tuned to 0.5 point
    python benchmarks/toolkits/try_one.py with_mct mobilenet_v3_small --drop 1 --target-bytes 300000
"""
from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from core.inputs import data as D  # noqa: E402
from core.inputs import models as M  # noqa: E402
from toolkits import CALIB_IMAGES, Job, user_lines, val_accuracy  # noqa: E402


def make_job(sample: str, drop_points: float | None, target_bytes: int | None, folder: Path) -> tuple[Job, D.DataSet]:
    """The Job a tool gets for `sample` at `drop_points` below its baseline, and the data it came from."""
    lm = M.load_sample(sample)
    data = D.load_data(lm.card["data"]).adapted(lm.input_shape)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.train), generator=g)[:CALIB_IMAGES]
    calib = [data.train.batch(idx[i:i + 64]) for i in range(0, len(idx), 64)]
    return Job(sample, lm.copy_module().eval(), tuple(lm.input_shape), calib, data.val.x, data.val.y,
               None if drop_points is None else drop_points / 100, target_bytes, folder), data


def score(output, data: D.DataSet) -> tuple[float, float]:
    """(validation, test) accuracy of a written file, in the runtime it names."""
    from core.runtimes import onnx_io

    if output.runtime == "onnxruntime":
        s = onnx_io.onnx_session(output.path)
        return onnx_io.onnx_accuracy(s, data.val), onnx_io.onnx_accuracy(s, data.test)
    module = torch.export.load(str(output.path)).module()
    return tuple(val_accuracy(module, split.x, split.y) for split in (data.val, data.test))  # type: ignore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tool")
    ap.add_argument("sample")
    ap.add_argument("--drop", type=float, help="points below the baseline (omit: the tool's run with no floor)")
    ap.add_argument("--target-bytes", type=int)
    args = ap.parse_args()
    tool = importlib.import_module(f"toolkits.{args.tool}")
    folder = Path(tempfile.mkdtemp(prefix=f"peer-{args.tool}-"))
    job, data = make_job(args.sample, args.drop, args.target_bytes, folder)
    t0 = time.perf_counter()
    outputs = tool.compress(job)
    took = time.perf_counter() - t0
    print(f"{args.tool}: {took:.1f} s, {user_lines(tool.__file__)} user lines")
    for o in outputs:
        val, test = score(o, data)
        print(f"  {o.label:40} {o.runtime:12} {o.path.stat().st_size:>10,} B  val {100 * val:.2f}  test {100 * test:.2f}")


if __name__ == "__main__":
    main()
