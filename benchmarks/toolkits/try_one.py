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

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from peers_toolkits import evaluation, make_job, score  # noqa: E402
from toolkits import user_lines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tool")
    ap.add_argument("sample")
    ap.add_argument("--drop", type=float, help="points below the baseline (omit: the tool's run with no floor)")
    ap.add_argument("--target-bytes", type=int)
    args = ap.parse_args()
    tool = importlib.import_module(f"toolkits.{args.tool}")
    lm, data = evaluation(args.sample)
    job = make_job(lm, data, args.drop, args.target_bytes, Path(tempfile.mkdtemp(prefix=f"peer-{args.tool}-")))
    t0 = time.perf_counter()
    outputs = tool.compress(job)
    took = time.perf_counter() - t0
    print(f"{args.tool}: {took:.1f} s, {user_lines(tool.__file__)} user lines")
    for o in outputs:
        val, test = score(o, data)
        print(f"  {o.label:40} {o.runtime:12} {o.path.stat().st_size:>10,} B  val {100 * val:.2f}  test {100 * test:.2f}")


if __name__ == "__main__":
    main()
