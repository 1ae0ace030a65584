"""End to end in a real browser: `streamlit run` on a free local port, driven by Playwright in Debian's Chromium.

Skipped, loudly, when /usr/bin/chromium is missing (`make test` installs it with apt-get).
Screenshots for the README are written only by `make screenshots` (EDGETRIM_SCREENSHOTS=docs),
so `make test` leaves the checkout clean.
"""
import contextlib
import os
import re
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
    with streamlit_app() as url:
        yield url


@contextlib.contextmanager
def streamlit_app():
    """The dashboard served on a free local port with this process's environment (its store and cache): its URL."""
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
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def metric_value(page, label: str) -> str:
    box = page.locator("[data-testid=stMetric]", has_text=label).first
    return box.locator("[data-testid=stMetricValue]").inner_text()


def slider_value(page, name: str) -> str:
    return page.get_by_role("slider", name=name).get_attribute("aria-valuetext")


def selected_point(page) -> str:
    return page.locator('input[aria-label^="Selected point"]').input_value()


def shot(page, name: str) -> None:
    """A screenshot for the README, only when EDGETRIM_SCREENSHOTS names a folder (`make screenshots`):
    a plain test run leaves the checkout clean."""
    folder = os.environ.get("EDGETRIM_SCREENSHOTS")
    if folder:
        path = ROOT / folder if not Path(folder).is_absolute() else Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path / f"{name}.png"), full_page=True)


IDLE = "() => !document.querySelector('[data-stale=true], [data-testid=stSpinner]')"


def settle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the app has finished its reruns: no stale (faded) element and no spinner, twice in a row."""
    for _ in range(2):
        page.wait_for_timeout(400)
        page.wait_for_function(IDLE, timeout=timeout_ms)


def assert_clean(page, where: str) -> None:
    assert page.locator("[data-testid=stException]").count() == 0, f"{where}: an exception box"
    errors = page.locator("[data-testid=stAlertContentError]")
    assert errors.count() == 0, f"{where}: {errors.first.inner_text()}"
    text = page.locator("body").inner_text()
    assert "Traceback" not in text and "\x1b[" not in text, f"{where}: a traceback or ANSI codes"


def nav(page, title: str) -> None:
    """Change page through the sidebar, in the same session (page.goto would start a new one)."""
    page.locator("[data-testid=stSidebarNavLink]", has_text=title).first.click()
    page.get_by_role("heading", name=title.split(" ")[0]).first.wait_for(timeout=60_000)
    settle(page)


def wait_metric_change(page, label: str, before: str, timeout_ms: int = 180_000) -> None:
    page.wait_for_function(
        "([l, b]) => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
        ".find(e => e.innerText.includes(l));"
        " return m && !m.innerText.includes(b) && !document.querySelector('[data-testid=stProgress]') }",
        arg=[label, before], timeout=timeout_ms)


def test_the_whole_job_choose_explore_sweep_pick_export_download(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from core.inputs import data as D
    from core.inputs import models as M
    from core.runtimes import executorch_io, onnx_io

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        t0 = time.time()
        page.goto(server)  # the default page (Model & data) lives at the root URL
        page.locator("[data-testid=stMetricValue]").first.wait_for(timeout=60_000)
        assert time.time() - t0 < 15, "the sample's baseline should show within 15 s of the server answering"
        settle(page)
        assert_clean(page, "Model & data")

        # Model & data: choose another sample; its baseline is measured and shown
        params = metric_value(page, "Parameters")
        page.locator("[data-testid=stSelectbox]", has_text="Sample model").click()
        page.get_by_role("option", name="mlp", exact=True).click()
        wait_metric_change(page, "Parameters", params)
        settle(page)
        assert metric_value(page, "Parameters") == "266,610"
        assert_clean(page, "Model & data, mlp")
        shot(page, "model")

        # Explore: sparsity and bits change the point; a student trains behind a progress bar with the time left
        nav(page, "Explore")
        page.locator("[data-testid=stMetricValue]").first.wait_for(timeout=60_000)
        before = metric_value(page, "Test accuracy")
        slider = page.get_by_role("slider", name="Sparsity (%)")
        slider.focus()
        page.keyboard.press("End")  # 95 % sparsity
        wait_metric_change(page, "Test accuracy", before)
        settle(page)
        archive = metric_value(page, "Compact archive")
        bits = page.get_by_role("slider", name="Weight bits")
        bits.focus()
        for _ in range(5):  # fp32 -> 8 -> 7 -> 6 -> 5 -> 4 bits
            page.keyboard.press("ArrowLeft")
            page.wait_for_timeout(30)
        wait_metric_change(page, "Compact archive", archive)
        settle(page)
        assert slider_value(page, "Weight bits") == "4" and "4-bit weights" in page.locator("body").inner_text()
        slider.focus()
        page.keyboard.press("Home")
        for _ in range(10):  # 0 -> 50 %, faster than the app can rerun
            page.keyboard.press("ArrowRight")
            page.wait_for_timeout(30)
        settle(page)
        assert slider_value(page, "Sparsity (%)") == "50"
        assert_clean(page, "Explore after quick key presses")
        # a student: moving its width starts nothing; Train starts it as a job, Cancel stops it, Train again finishes
        page.get_by_text("Student training").click()
        epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
        epochs.fill("100")
        epochs.press("Enter")
        settle(page)
        width = page.get_by_role("slider", name="Student width (distillation)")
        for expected in ("0.75", "0.5", "0.25"):  # three values, none of them trains
            width.focus()
            page.keyboard.press("ArrowLeft")
            settle(page)
            assert slider_value(page, "Student width (distillation)") == expected
            assert page.locator("[data-testid=stProgress]").count() == 0, f"width {expected} started training"
            assert "trains before it is measured" in page.locator("body").inner_text()
        train = page.get_by_role("button", name="Train", exact=True)
        train.click()
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stProgress]')]"
                               ".some(b => /epoch \\d+\\/\\d+.* left/.test(b.innerText))", timeout=60_000)
        shot(page, "explore-training")
        asked = time.time()
        page.get_by_role("button", name="Cancel", exact=True).click()
        page.get_by_text("Training was cancelled").first.wait_for(timeout=30_000)
        assert time.time() - asked < 10, "Cancel did not free the page"
        settle(page)
        page.get_by_role("button", name="Train", exact=True).click()
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMetric]')]"
                               ".some(e => e.innerText.startsWith('Parameters') && /\\d/.test(e.innerText))",
                               timeout=300_000)
        settle(page)
        assert "student width 0.25" in page.locator("body").inner_text()
        assert_clean(page, "Explore after training a student")
        shot(page, "explore")
        width.focus()
        page.keyboard.press("End")  # back to the model itself
        settle(page)
        nav(page, "Model & data")
        nav(page, "Explore")
        assert slider_value(page, "Sparsity (%)") == "50", "Explore forgot the sparsity"
        assert slider_value(page, "Weight bits") == "4", "Explore forgot the bits"

        # Sweep: a 4-point sweep in the background; a reload mid-way shows the job's true progress, which finishes
        nav(page, "Sweep")
        assert_clean(page, "Sweep")
        name = page.get_by_label("Run name")
        name.fill("browser-sweep")
        name.press("Enter")
        settle(page)
        for box, chip in (("Pruning ratios", "90 %"), ("Pruning ratios", "75 %"), ("Weights", "w2 (2-bit)"),
                          ("File formats", "int8 file")):
            remove = page.locator("[data-testid=stMultiSelect]", has_text=box).get_by_role("button", name=f"Remove {chip}")
            for _ in range(3):  # a click that lands while the app reruns can be lost: try again
                if not remove.count():
                    break
                remove.click()
                page.keyboard.press("Escape")  # close the options list the click may have opened
                settle(page)
            assert not remove.count(), f"could not remove {chip} from {box}"
        et = executorch_io.why_unavailable() is None  # make test installs it; without it, ONNX Runtime only
        if et:  # each point also written, scored and timed as an ExecuTorch .pte
            page.locator("[data-testid=stMultiSelect]", has_text="Runtimes").locator("input").click()
            page.get_by_role("option", name="ExecuTorch (.pte, XNNPACK)").click()
            page.keyboard.press("Escape")
            settle(page)
        # one thread per point, as a small board has: the browser and the app share this machine's two cores,
        # and a timing that shares its cores is marked busy (left out of latency budgets)
        page.locator("[data-testid=stSelectbox]", has_text="Threads").click()
        page.get_by_role("option", name="1 thread", exact=True).click()
        settle(page)
        assert "4 points" in page.locator("[data-testid=stMarkdownContainer]", has_text="points").first.inner_text()
        page.get_by_role("button", name="Run sweep").click()
        page.locator("[data-testid=stProgress]").first.wait_for(timeout=30_000)
        page.reload()
        bar = page.locator("[data-testid=stProgress]").first
        bar.wait_for(timeout=60_000)
        assert "of 4 points stored" in bar.inner_text(), bar.inner_text()
        assert page.get_by_label("Run name").input_value() == "browser-sweep", "the form did not come back from the job"
        page.wait_for_function("() => { const b = document.querySelector('[data-testid=stProgress]');"
                               " return b && b.innerText.includes('4 of 4 points stored · finished') }", timeout=240_000)
        settle(page)
        assert_clean(page, "Sweep after the sweep")
        shot(page, "sweep")

        # Trade-offs: the sweep's points on the runtime they ship to; a latency budget beside the floor, first
        # one nothing meets (the closest point and by how much), then one that fits
        nav(page, "Trade-offs")
        chart = page.locator(".js-plotly-plot").first
        chart.wait_for(timeout=60_000)
        assert "browser-sweep" in page.locator("body").inner_text()
        runtime = "ExecuTorch" if et else "ONNX Runtime"
        if et:
            page.locator("[data-testid=stSelectbox]", has_text="Runtime").first.click()
            page.get_by_role("option", name="ExecuTorch", exact=True).click()
            settle(page)
        retime = page.get_by_role("button", name=re.compile(r"Time the \d+ busy point"))
        for _ in range(3):  # timed while the machine was crowded: time them again, as a person would
            if not retime.count():
                break
            retime.click()
            settle(page, 240_000)
        budget = page.get_by_role("slider", name=f"Latency budget on {runtime} (batch 1)")
        budget.focus()
        page.keyboard.press("Home")  # below the fastest point
        settle(page)
        warning = page.locator("[data-testid=stAlertContentWarning]").first.inner_text()
        assert "over the budget" in warning and "The closest is" in warning, warning
        budget.focus()
        page.keyboard.press("End")
        page.keyboard.press("ArrowLeft")  # the largest budget: above the slowest point, so every point fits
        settle(page)
        limit = slider_value(page, f"Latency budget on {runtime} (batch 1)")
        success = page.locator("[data-testid=stAlertContentSuccess]").first.inner_text()
        assert f"within {float(limit.split()[0]):.3g} ms" in success, (limit, success)
        assert_clean(page, "Trade-offs under a latency budget")
        shot(page, "budget")
        floor = page.get_by_role("slider", name="Accuracy floor (%)")
        floor.focus()
        for _ in range(5):
            page.keyboard.press("ArrowLeft")
        settle(page)
        floor_value = slider_value(page, "Accuracy floor (%)")
        before = selected_point(page)
        points = chart.locator(".scatterlayer .trace .point")  # any point but the selected one (tried in turn)
        for i in range(points.count()):  # the first may be the one already selected (the recommended point)
            box = points.nth(i).bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_timeout(300)
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            try:
                page.wait_for_function("b => { const s = document.querySelector("
                                       "'input[aria-label^=\"Selected point\"]'); return s && s.value !== b }",
                                       arg=before, timeout=15_000)
                settle(page)
                if not selected_point(page).startswith("baseline"):
                    break
                before = selected_point(page)  # the baseline: a compressed point is wanted, click the next
            except Exception:  # that point was already the selected one: click the next
                settle(page)
        assert selected_point(page) != before, "no click on the chart changed the selected point"
        settle(page)
        chosen = selected_point(page).split(" · ")[0]
        assert chosen != "baseline (fp32)"
        assert_clean(page, "Trade-offs")
        shot(page, "tradeoffs")

        # Export: build, download through the browser, re-score the file in ONNX Runtime
        nav(page, "Export")
        assert chosen in page.locator("h3").first.inner_text(), "Export does not show the point chosen on Trade-offs"
        asked = time.time()
        page.get_by_role("button", name="Build, reload and verify").click()
        page.get_by_role("button", name="Download the model card (JSON)").wait_for(timeout=180_000)
        built_s = time.time() - asked
        settle(page)
        assert_clean(page, "Export")
        shot(page, "export")
        shown = page.locator("[data-testid=stAlertContentSuccess]").first.inner_text()
        with page.expect_download() as download:
            page.locator("[data-testid=stDownloadButton] button").first.click()
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        assert path.suffix == (".pte" if et else ".onnx") and path.stat().st_size > 0
        test = D.load_data("digits").adapted(M.load_sample("mlp").input_shape).test
        if et:  # the file the runtime chosen on Trade-offs runs, re-scored in that runtime
            accuracy = executorch_io.accuracy(path, test)
        else:
            accuracy = onnx_io.onnx_accuracy(onnx_io.onnx_session(path), test)
        assert f"scores {100 * accuracy:.2f} %" in shown, (shown, accuracy)
        assert "nothing trained again" in shown and built_s < 60, (shown, built_s)  # from the kept model

        # away and back: the choices are still there
        nav(page, "Model & data")
        nav(page, "Trade-offs")
        assert slider_value(page, "Accuracy floor (%)") == floor_value, "Trade-offs forgot the floor"
        assert selected_point(page).startswith(chosen), "Trade-offs forgot the selected point"

        # a per-layer point by hand: the heatmap seeds each layer's ratio, measured beside the uniform one
        page.get_by_text("Per-layer pruning sensitivity").click()
        page.get_by_role("button", name="Compute sensitivity").click()
        page.get_by_role("slider", name="Seed every layer from the heatmap: the most it can lose alone (points)"
                         ).wait_for(timeout=120_000)
        settle(page)
        tolerance = page.get_by_role("slider", name="Seed every layer from the heatmap: the most it can lose alone "
                                                    "(points)")
        tolerance.focus()
        page.keyboard.press("End")  # 5 points: every layer pruned as far as it alone allows
        settle(page)
        page.get_by_role("button", name="Measure the per-layer point and the uniform one").click()
        table = page.locator("[data-testid=stTable]", has_text="uniform (global)")
        table.wait_for(timeout=120_000)
        settle(page)
        assert "smallest first" in table.inner_text() and "baseline" in table.inner_text()
        assert "At the same sparsity the per-layer point is" in page.locator("body").inner_text()
        assert_clean(page, "Trade-offs, a per-layer point")
        shot(page, "per_layer")
        browser.close()
