"""Streamed ImageFolders: peak memory flat as the folder grows, throughput beside a plain torch DataLoader.

    nice -n 10 python benchmarks/stream_memory.py                  # 10k, 30k, 100k images (generates ~1.5 GB once)
    python benchmarks/stream_memory.py --quick                     # 1k and 3k, one round: to try it
    python benchmarks/stream_memory.py --sizes 10000 30000 --workers 2 --batch 128 --rounds 2
    python benchmarks/stream_memory.py --sizes 10000 --kinds memory --out /tmp/memory.json  # the old way, for scale

Issue 26's bars: evaluating a synthetic 224-px JPEG ImageFolder of 10k, 30k and 100k images holds peak RSS within
20 % of the 10k figure, and images/s within 10 % of a plain torchvision ImageFolder + DataLoader over the same
folder. The images are smooth noise plus a class-dependent stripe pattern (10 classes, 224 x 224 RGB, JPEG quality
85), generated once under --root (resumable; the 10k and 30k folders are hard links to the first images of the
100k one). The model is a small CNN with random weights: accuracy is not the point here, it is printed only to
show every image was scored. Each run is a fresh subprocess: edgetrim streams the folder (load_image_folder with
stream=True; train, val and test scored through core.inputs.train.predict), the plain run reads it with
torchvision's ImageFolder (Resize to 224 x 224 bilinear, ToTensor) through a DataLoader with the same workers and
batch; the two alternate for --rounds rounds. Peak RSS is ru_maxrss of the main process (RUSAGE_SELF) and of the
largest DataLoader worker (RUSAGE_CHILDREN). The files sit in the page cache: this measures decoding, not a disk.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# ---- defaults -----------------------------------------------------------------------------
DATA_ROOT = Path("/tmp/edgetrim-stream")
SIZES = [10_000, 30_000, 100_000]
QUICK_SIZES = [1_000, 3_000]
CLASSES, SIDE, QUALITY = 10, 224, 85
BATCH, ROUNDS = 128, 2
KINDS = ["edgetrim", "plain", "memory"]
OUT = ROOT / "benchmarks" / "results" / "stream_memory.json"


# ---- the synthetic folder ------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _pattern(c: int):
    import numpy as np

    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    angle, freq = np.pi * c / CLASSES, 0.05 + 0.012 * c
    return 40 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)))[..., None]


def _write(i: int, pool: str) -> None:
    """Image i (class i % 10, the (i // 10)-th of its class): the same bytes whoever writes it, written atomically."""
    import numpy as np
    from PIL import Image

    c, j = i % CLASSES, i // CLASSES
    path = Path(pool) / f"class{c}" / f"{j:06d}.jpg"
    if path.exists():
        return
    rng = np.random.default_rng(i)
    low = Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).resize((SIDE, SIDE), Image.BICUBIC)
    arr = np.clip(np.asarray(low, dtype=np.float32) * 0.8 + _pattern(c) + rng.normal(0, 6, (SIDE, SIDE, 3)), 0, 255)
    tmp = path.with_suffix(".tmp")
    Image.fromarray(arr.astype(np.uint8)).save(tmp, "JPEG", quality=QUALITY)
    os.replace(tmp, path)


def _write_many(args) -> int:
    start, stop, pool = args
    for i in range(start, stop):
        _write(i, pool)
    return stop - start


def generate(root: Path, sizes: list[int]) -> dict[int, Path]:
    """root/pool holds max(sizes) images; root/n<size> each size's first images of every class, as hard links."""
    from multiprocessing import Pool

    pool, most = root / "pool", max(sizes)
    for c in range(CLASSES):
        (pool / f"class{c}").mkdir(parents=True, exist_ok=True)
    have = sum(len(os.listdir(pool / f"class{c}")) for c in range(CLASSES))
    if have < most:
        t0, chunk = time.perf_counter(), 500
        print(f"generating {most - have} of {most} images under {pool} ...", flush=True)
        with Pool(2) as p:
            done = 0
            for n in p.imap_unordered(_write_many, [(s, min(s + chunk, most), str(pool))
                                                    for s in range(0, most, chunk)]):
                done += n
                if done % 10_000 < chunk:
                    print(f"  {done}/{most} ({time.perf_counter() - t0:.0f} s)", flush=True)
    folders = {}
    for n in sizes:
        folder = root / f"n{n}"
        for c in range(CLASSES):
            (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
            for j in range(n // CLASSES):
                link = folder / f"class{c}" / f"{j:06d}.jpg"
                if not link.exists():
                    os.link(pool / f"class{c}" / f"{j:06d}.jpg", link)
        folders[n] = folder
    return folders


# ---- one run, in a fresh process -------------------------------------------------------------

def small_cnn():
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 5, 4, 2), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, CLASSES)).eval()


def run_edgetrim(folder: Path, workers: int, batch: int, stream: bool = True) -> dict:
    from core.inputs import data as D
    from core.inputs import stream as S
    from core.inputs.train import predict

    S.NUM_WORKERS = workers
    model = small_cnn()
    t0 = time.perf_counter()
    ds = D.load_image_folder(folder, stream=stream)
    t1 = time.perf_counter()
    n = correct = 0
    for split in (ds.train, ds.val, ds.test):
        correct += int((predict(model, split, batch).argmax(1) == split.y).sum())
        n += len(split)
    return {"images": n, "load_s": t1 - t0, "eval_s": time.perf_counter() - t1, "accuracy": correct / n,
            "describe": ds.describe()}


def run_plain(folder: Path, workers: int, batch: int) -> dict:
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    model = small_cnn()
    t0 = time.perf_counter()
    tf = transforms.Compose([transforms.Resize((SIDE, SIDE), transforms.InterpolationMode.BILINEAR),
                             transforms.ToTensor()])
    ds = datasets.ImageFolder(str(folder), transform=tf)
    t1 = time.perf_counter()
    n = correct = 0
    with torch.inference_mode():
        for x, y in DataLoader(ds, batch_size=batch, num_workers=workers):
            correct += int((model(x).argmax(1) == y).sum())
            n += len(y)
    return {"images": n, "load_s": t1 - t0, "eval_s": time.perf_counter() - t1, "accuracy": correct / n}


def child(kind: str, folder: Path, workers: int, batch: int) -> None:
    run = {"edgetrim": run_edgetrim, "plain": run_plain,
           "memory": lambda *a: run_edgetrim(*a, stream=False)}[kind]  # every image decoded into memory first
    out = run(folder, workers, batch)
    out["images_per_s"] = out["images"] / out["eval_s"]
    out["rss_main_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_worker_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))  # Linux: what RSS is made of at the end
    out.update({f"{k}_end_mb": int(status[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile", "RssShmem")})
    print(json.dumps(out))


def fresh(kind: str, folder: Path, workers: int, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--folder", str(folder), "--workers", str(workers),
           "--batch", str(batch)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- the whole benchmark ---------------------------------------------------------------------

def summarise(runs: list[dict], sizes: list[int]) -> list[dict]:
    """Per size: edgetrim's peak RSS (the largest of its rounds) against the first size's, and the median images/s
    of edgetrim and of the plain DataLoader side by side."""
    summary, base = [], None
    for n in sizes:
        mine = [r for r in runs if r["size"] == n and r["kind"] == "edgetrim"]
        plain = [r for r in runs if r["size"] == n and r["kind"] == "plain"]
        rss = max(r["rss_main_mb"] for r in mine)
        base = base or rss
        ips = statistics.median(r["images_per_s"] for r in mine)
        pips = statistics.median(r["images_per_s"] for r in plain)
        summary.append({"size": n, "rss_main_mb": rss, "rss_worker_mb": max(r["rss_worker_mb"] for r in mine),
                        "rss_vs_first": rss / base, "plain_rss_main_mb": max(r["rss_main_mb"] for r in plain),
                        "images_per_s": ips, "plain_images_per_s": pips, "throughput_ratio": ips / pips,
                        "load_s": statistics.median(r["load_s"] for r in mine),
                        "plain_load_s": statistics.median(r["load_s"] for r in plain)})
    print(f"\n{'images':>8} {'RSS main MB':>12} {'vs first':>9} {'worker MB':>10} {'plain MB':>9} "
          f"{'edgetrim img/s':>15} {'plain img/s':>12} {'ratio':>6}")
    for s in summary:
        print(f"{s['size']:>8} {s['rss_main_mb']:>12.0f} {s['rss_vs_first']:>9.3f} {s['rss_worker_mb']:>10.0f} "
              f"{s['plain_rss_main_mb']:>9.0f} {s['images_per_s']:>15.1f} {s['plain_images_per_s']:>12.1f} "
              f"{s['throughput_ratio']:>6.3f}")
    return summary


def main() -> None:
    from core.inputs import stream as S

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--workers", type=int, default=S.NUM_WORKERS)
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--root", type=Path, default=DATA_ROOT)
    ap.add_argument("--quick", action="store_true", help="1k and 3k images, one round (written under --root)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=KINDS[:2],
                    help="edgetrim (streamed), plain (torchvision), memory (edgetrim reading every image first)")
    ap.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.folder, a.workers, a.batch)
    sizes = a.sizes or (QUICK_SIZES if a.quick else SIZES)
    rounds = a.rounds or (1 if a.quick else ROUNDS)
    out = a.out or (a.root / "quick.json" if a.quick else OUT)
    t0 = time.perf_counter()
    folders = generate(a.root, sizes)
    generated = time.perf_counter() - t0
    runs = []
    for n in sizes:
        for r in range(rounds):
            for kind in a.kinds if r % 2 == 0 else a.kinds[::-1]:
                res = {"size": n, "round": r + 1, "kind": kind, **fresh(kind, folders[n], a.workers, a.batch)}
                runs.append(res)
                print(f"{n:>7} {kind:>8} round {r + 1}: {res['images_per_s']:7.1f} images/s, eval "
                      f"{res['eval_s']:6.1f} s, load {res['load_s']:5.2f} s, RSS main {res['rss_main_mb']:6.0f} MB "
                      f"worker {res['rss_worker_mb']:6.0f} MB", flush=True)
    summary = summarise(runs, sizes) if {"edgetrim", "plain"} <= set(a.kinds) else []
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python benchmarks/stream_memory.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "workers": a.workers, "batch": a.batch, "rounds": rounds, "generate_s": generated,
        "summary": summary, "runs": runs}, indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
