"""In Chromium: Trade-offs on LiteRT for a microcontroller. A board's flash and RAM as budgets, a RAM budget nothing
meets (the closest point named, with how much it misses by), one that fits, and the recommended .tflite built,
downloaded through the browser and re-scored to what the page shows. Skipped loudly without the LiteRT extra."""
import re
from pathlib import Path

import pytest

from core.engine import grid, sweep
from core.inputs import data as D
from core.inputs import models as M
from core.results.store import Store
from core.runtimes import litert_io, micro
from tests.dashboard.test_browser import ARGS, CHROMIUM, assert_clean, nav, settle, shot, streamlit_app

pytestmark = pytest.mark.browser

RUN = {"run": "mcu", "model": "lenet5", "data": "digits",
       "axes": {"prune": ["structured"], "prune_ratio": [0.0, 0.5], "deploy": ["fp32", "int8"]},
       "measure": {"budget_s": 0.01, "threads": 1, "runtimes": ["onnxruntime", "litert"], "board": "nano33ble"}}


@pytest.fixture
def micro_server(tmp_path, monkeypatch):
    if litert_io.why_unavailable():
        pytest.skip(f"SKIPPED LOUDLY: LiteRT is not installed ({litert_io.why_unavailable()}); `make litert` adds it")
    if not Path(CHROMIUM).exists():
        pytest.skip("SKIPPED LOUDLY: no Chromium at /usr/bin/chromium (apt-get install chromium)")
    monkeypatch.setenv("EDGETRIM_STORE", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    store = Store()
    sweep.run_sweep(grid.load_config(RUN), store)
    store.close()
    with streamlit_app() as url:
        yield url


def _alert(page, kind: str) -> str:
    return page.locator(f"[data-testid=stAlertContent{kind}]").first.inner_text()


def test_tradeoffs_on_litert_under_a_board_s_flash_and_ram_then_the_tflite_downloaded_and_rescored(micro_server,
                                                                                                  tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(micro_server, timeout=120_000)
        settle(page)
        nav(page, "Trade-offs")
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        page.locator("[data-testid=stSelectbox]", has_text="Runtime").first.click()
        page.get_by_role("option", name="LiteRT", exact=True).click()
        settle(page)

        # a board: its flash and RAM become the budgets, and the recommendation fits on it
        page.locator("[data-testid=stSelectbox]", has_text="Microcontroller").click()
        page.get_by_role("option", name=re.compile("^nano33ble")).click()
        settle(page)
        assert page.get_by_role("slider", name="RAM budget").get_attribute("aria-valuetext") == "256 KB"
        assert "within 1,024 KB of flash and 256 KB of RAM" in _alert(page, "Success")
        shot(page, "micro")

        # a RAM budget nothing meets: the closest point is named, with how far over it is
        ram = page.get_by_role("slider", name="RAM budget")
        ram.focus()
        page.keyboard.press("Home")
        settle(page)
        warning = _alert(page, "Warning")
        assert "meets the budget; the closest is" in warning and re.search(r"RAM \(tensor arena\) [\d.,]+ KB "
                                                                           r"against [\d.,]+ KB, [\d.,]+ KB \(\d+ %\) "
                                                                           r"over", warning), warning
        board = page.locator('input[aria-label^="Microcontroller"]').input_value()
        assert "my own limits" in board, "moving a budget off the board's figure left the board named"
        assert_clean(page, "Trade-offs under a RAM budget nothing meets")

        # one that fits again: the board, and the recommended point (the smallest .tflite within it) built
        page.locator("[data-testid=stSelectbox]", has_text="Microcontroller").click()
        page.get_by_role("option", name=re.compile("^nano33ble")).click()
        settle(page)
        recommended = re.search(r"\*?\*?([^*]+?)\*?\*?, [\d.]+ % on validation", _alert(page, "Success"))
        assert "int8" in page.locator('input[aria-label^="Selected point"]').input_value()
        assert_clean(page, "Trade-offs within the board")

        nav(page, "Export")
        page.get_by_role("button", name="Build, reload and verify").click()
        page.get_by_role("button", name="Download the model card (JSON)").wait_for(timeout=180_000)
        settle(page)
        assert_clean(page, "Export")
        shown = _alert(page, "Success")
        with page.expect_download() as download:
            page.locator("[data-testid=stDownloadButton] button").first.click()
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        browser.close()
    assert path.suffix == ".tflite" and recommended is not None
    test = D.load_data("digits").adapted(M.load_sample("lenet5").input_shape).test
    assert f"scores {100 * litert_io.accuracy(path, test):.2f} %" in shown, shown
    flash, ram, _ = micro.memory(path)
    assert micro.board("nano33ble").fits(flash, ram)
