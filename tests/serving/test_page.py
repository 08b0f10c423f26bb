"""The web page in a real browser: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("GOOGLENET_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = os.environ.get("GOOGLENET_SCREENSHOT")  # where to keep the page's picture, if set

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def test_an_uploaded_image_shows_the_apis_top5(browser, served, photos, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # a laptop
    page.goto(served)
    page.wait_for_function("document.querySelector('#model').textContent.includes('variant')")
    assert "variant bn" in page.text_content("#model") and "10 classes" in page.text_content("#model")
    page.set_input_files("#files", [str(photos[0]), str(photos[1])])
    page.wait_for_function("document.querySelectorAll('.card .bar').length === 10", timeout=30_000)
    shown = {}
    for card in page.query_selector_all(".card"):
        name = card.query_selector("h2").text_content()
        shown[name] = [bar.query_selector(".label").text_content() for bar in card.query_selector_all(".bar")]
        assert "ms" in card.query_selector(".body p").text_content()
    for photo in photos[:2]:
        api = httpx.post(f"{served}/v1/predict", files=[("files", (photo.name, photo.read_bytes()))]).json()
        assert shown[photo.name] == [t["class"] for t in api["predictions"][0]["top"]]
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)
    for width in (1280, 390):  # a laptop, a phone: nothing wider than the screen
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, width
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    page.close()


def test_a_broken_file_shows_the_servers_message(browser, served, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a picture")
    page = browser.new_page()
    page.goto(served)
    page.set_input_files("#files", str(broken))
    page.wait_for_selector(".card .error", timeout=30_000)
    message = page.text_content(".card .error")
    api = httpx.post(f"{served}/v1/predict", files=[("files", ("broken.jpg", broken.read_bytes()))])
    assert api.status_code == 422 and message == api.json()["error"]
    assert "broken.jpg: not an image" in message
    page.close()


def test_the_overlay_of_where_the_model_looked_is_shown_beside_the_top5(browser, served, photos):
    pytest.importorskip("captum", reason="explanations need Captum (pip install 'googlenet[explain]')")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(served)
    page.wait_for_function("document.querySelector('#model').textContent.includes('torch')")
    page.set_input_files("#files", str(photos[2]))
    page.wait_for_function("document.querySelector('.card .overlay img')?.naturalWidth > 0", timeout=60_000)
    card = page.query_selector(".card")
    top1 = card.query_selector(".bar .label").text_content()
    caption = card.query_selector(".overlay figcaption").text_content()
    assert caption == f"{top1}: gradcam on inception4e"
    bars = card.query_selector(".result > div").bounding_box()
    overlay = card.query_selector(".overlay").bounding_box()
    assert overlay["x"] >= bars["x"] + bars["width"] - 1 and overlay["width"] > 90  # beside the bars
    page.close()
