"""End to end in a real browser: `streamlit run` on a free local port, driven by Playwright in Debian's Chromium.

Skipped, loudly, when /usr/bin/chromium is missing (`make test` installs it with apt-get).
Screenshots land in docs/ for the README.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(ui_env):
    if not Path(CHROMIUM).exists():
        pytest.skip("SKIPPED LOUDLY: no Chromium at /usr/bin/chromium (apt-get install chromium); "
                    "the end-to-end browser test did not run")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                             "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not answer on its health endpoint within 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def metric_value(page, label: str) -> str:
    box = page.locator("[data-testid=stMetric]", has_text=label).first
    return box.locator("[data-testid=stMetricValue]").inner_text()


def test_slider_moves_accuracy_and_tradeoffs_shows_the_chart(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t0 = time.time()
        page.goto(f"{server}/model")
        page.locator("[data-testid=stMetricValue]").first.wait_for(timeout=60_000)
        assert time.time() - t0 < 15, "the sample's baseline should show within 15 s of the server answering"
        page.goto(f"{server}/explore")
        page.locator("[data-testid=stMetricValue]").first.wait_for(timeout=60_000)
        before = metric_value(page, "Test accuracy")
        slider = page.get_by_role("slider").first
        slider.focus()
        page.keyboard.press("End")  # 95 % sparsity
        page.wait_for_function(
            "b => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
            ".find(e => e.innerText.includes('Test accuracy'));"
            " return m && !m.innerText.includes(b) }", arg=before, timeout=120_000)
        after = metric_value(page, "Test accuracy")
        assert after != before
        page.wait_for_timeout(500)
        page.screenshot(path=str(ROOT / "docs" / "explore.png"), full_page=True)
        page.goto(f"{server}/tradeoffs")
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ROOT / "docs" / "tradeoffs.png"), full_page=True)
        browser.close()
