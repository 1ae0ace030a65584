"""Time the dashboard as a person feels it, in Chromium: a seen point on Explore, and Trade-offs with 100+ points.

    python benchmarks/dashboard_time.py          # about 2 minutes on 2 cores

A 105-point LeNet-5 run is swept into a private store, `streamlit run` serves the app on a
free local port, and Playwright drives Debian's Chromium (as tests/dashboard/test_browser.py
does). Explore: the sparsity slider moves between two points already in the store; the time
is from the key press to the accuracy metric showing the other point. Trade-offs: the time
from a click on the sidebar link to every point drawn on the chart. Medians of REPEATS
rounds, with the range; the bars the issue set are <= 1 s and <= 2 s.
"""
from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from core.cli import format_table  # noqa: E402
from core.engine import grid, sweep  # noqa: E402
from core.results.store import Store  # noqa: E402
from tests.dashboard.test_browser import ARGS, CHROMIUM, free_port, metric_value, nav, settle  # noqa: E402

REPEATS = 5
RUN = {"run": "bench-105", "model": "lenet5", "data": "digits", "measure": {"latency": False},
       "axes": {"prune": ["unstructured", "structured"], "prune_ratio": [0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
                "quantize": ["fp32", "w8", "w6", "w4", "w3", "w2", "share4"]}}
OUT = ROOT / "benchmarks" / "results" / "dashboard.csv"


def serve(env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                             "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("streamlit did not start")


def accuracy_is(page, text: str, timeout_ms: int = 60_000) -> None:
    page.wait_for_function("t => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
                           ".find(e => e.innerText.includes('Test accuracy'));"
                           " return m && m.querySelector('[data-testid=stMetricValue]').innerText === t }",
                           arg=text, timeout=timeout_ms)


def explore_seen_point(page) -> list[float]:
    nav(page, "Explore")
    slider = page.get_by_role("slider", name="Sparsity (%)")
    values = {}
    for target in (45, 50):  # compute both points once, so every timed move lands on a stored point
        slider.focus()
        page.keyboard.press("Home")
        for _ in range(target // 5):
            page.keyboard.press("ArrowRight")
        settle(page)
        values[target] = metric_value(page, "Test accuracy")
    times = []
    for i in range(REPEATS):
        key, target = ("ArrowLeft", 45) if i % 2 == 0 else ("ArrowRight", 50)
        slider.focus()
        t0 = time.perf_counter()
        page.keyboard.press(key)
        accuracy_is(page, values[target])
        times.append(time.perf_counter() - t0)
        settle(page)
    return times


def tradeoffs_draw(page, points: int) -> list[float]:
    times = []
    for _ in range(REPEATS):
        nav(page, "Model & data")
        t0 = time.perf_counter()
        page.locator("[data-testid=stSidebarNavLink]", has_text="Trade-offs").first.click()
        page.wait_for_function("n => document.querySelectorAll('.js-plotly-plot .scatterlayer .point').length >= n",
                               arg=points, timeout=60_000)
        times.append(time.perf_counter() - t0)
        settle(page)
    return times


def main() -> None:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="edgetrim-dash-bench-"))
    env = {**os.environ, "EDGETRIM_STORE": str(tmp / "results.sqlite"), "EDGETRIM_CACHE": str(tmp / "cache")}
    os.environ.update(env)
    store = Store()
    cfg = grid.load_config(RUN)
    result = sweep.run_sweep(cfg, store)
    points = int((store.table(cfg.run)["status"] == "ok").sum())
    store.close()
    print(f"swept {result.total} points ({points} ok) in {result.seconds:.0f} s into a private store")
    proc, url = serve(env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.locator("[data-testid=stMetricValue]").first.wait_for(timeout=120_000)
            settle(page)
            explore = explore_seen_point(page)
            draw = tradeoffs_draw(page, points)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows = [{"what": "Explore: a point already in the store, key press to metric", "bar s": 1.0,
             "median s": round(statistics.median(explore), 2), "min s": round(min(explore), 2),
             "max s": round(max(explore), 2), "rounds": len(explore)},
            {"what": f"Trade-offs: {points} points, click to all drawn", "bar s": 2.0,
             "median s": round(statistics.median(draw), 2), "min s": round(min(draw), 2),
             "max s": round(max(draw), 2), "rounds": len(draw)}]
    print(format_table(rows))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
