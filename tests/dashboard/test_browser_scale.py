"""In Chromium: the Model page's training device (auto names what it takes here), and the Sweep page's estimate
before a run ('N points to compute, about T here') with its subset option, which the sweep file then carries."""
import re
from pathlib import Path

import pytest

from tests.dashboard.test_browser import ARGS, CHROMIUM, assert_clean, nav, settle, shot, streamlit_app

pytestmark = pytest.mark.browser


@pytest.fixture
def scale_server(tmp_path, monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.skip("SKIPPED LOUDLY: no Chromium at /usr/bin/chromium (apt-get install chromium)")
    monkeypatch.setenv("EDGETRIM_STORE", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    with streamlit_app() as url:
        yield url


def test_the_training_device_and_the_sweep_estimate_with_a_subset(scale_server):
    import torch
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(scale_server, timeout=120_000)
        page.locator("[data-testid=stMetricValue]").first.wait_for(timeout=60_000)
        settle(page)
        here = "cuda:0" if torch.cuda.is_available() else "cpu"
        assert page.locator('input[aria-label^="Training device"]').input_value().startswith(f"auto ({here}")
        page.locator("[data-testid=stSelectbox]", has_text="Training device").click()
        page.get_by_role("option", name="cpu", exact=True).click()
        settle(page)
        assert page.locator('input[aria-label^="Training device"]').input_value() == "cpu"
        assert_clean(page, "Model & data, device cpu")
        shot(page, "model-device")

        nav(page, "Sweep")
        page.get_by_text(re.compile(r"to compute, about \d.* here")).first.wait_for(timeout=120_000)
        subset = page.get_by_role("spinbutton", name=re.compile("Score on a subset first"))
        subset.fill("500")
        subset.press("Enter")
        settle(page)
        text = page.locator("body").inner_text()
        assert re.search(r"\d+ points? to compute, about \d+ s here", text) and "about about" not in text, text[:2000]
        assert_clean(page, "Sweep, subset 500")
        shot(page, "sweep-estimate")
        browser.close()
