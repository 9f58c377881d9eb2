"""The page at GET / in a real browser (Debian's chromium driven by playwright), against the real server
running the shipped models: upload, result at 4x, the comparison slider, errors in words, a narrow screen; and
the text-to-image tab against a server on the stand-in text models.

Screenshots go to the test's temporary folder; with UPDATE_SCREENSHOTS=1 also to docs/ (for the README).
CI installs chromium (.ci/run), so this runs there; elsewhere it is skipped when no chromium is found.
"""
from __future__ import annotations

import os
import shutil

import pytest
from PIL import Image

from tests.helpers import ROOT, SHARED, ServerProcess, photo, write_nearest_model
from tests.t2i_standins import write_lapgan, write_style_encoder, write_t2i_models

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="no chromium on this machine"),
]


@pytest.fixture(scope="module")
def server():
    srv = ServerProcess({"GAN_MODELS_DIR": str(ROOT / "models")})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM, "CI must install chromium (see .ci/run)"
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def images(tmp_path):
    src = SHARED / "bench" / "Set14" / "monarch.png"
    img = Image.open(src).convert("RGB").crop((200, 150, 328, 246)) if src.exists() else Image.fromarray(photo(128, 96))
    png = tmp_path / "butterfly.png"
    img.save(png)
    text = tmp_path / "notes.txt"
    text.write_text("this is not an image")
    return png, text


def shots(page, name: str, tmp_path) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        (ROOT / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "docs" / f"{name}.png"), full_page=True)


def test_upscale_in_the_browser(server, browser, images, tmp_path):
    png, text = images
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url + "/")
    page.set_input_files("#upscale-form input[type=file]", str(png))
    page.click("#upscale-form button[type=submit]")
    page.wait_for_selector("#upscale-result:not([hidden])", timeout=60_000)
    page.wait_for_function("document.querySelector('#after').naturalWidth > 0")
    w, h = page.eval_on_selector("#after", "i => [i.naturalWidth, i.naturalHeight]")
    assert (w, h) == (4 * 128, 4 * 96)
    assert page.eval_on_selector("#before", "i => i.naturalWidth") == 128
    assert "sr-x4" in page.inner_text("#upscale-meta") and "512x384" in page.inner_text("#upscale-meta")
    assert page.get_attribute("#upscale-download", "download") == "butterfly_x4.png"
    assert page.is_visible("#faces-option")  # face-x4 is shipped
    page.fill("#slider", "20")
    assert "20%" in page.eval_on_selector("#after-clip", "e => e.style.clipPath")
    shots(page, "web-upscale-desktop", tmp_path)

    # An error from the API is shown in words, and the page stays usable.
    page.set_input_files("#upscale-form input[type=file]", str(text))
    page.click("#upscale-form button[type=submit]")
    page.wait_for_selector("#upscale-status.error")
    assert "Not a supported image" in page.inner_text("#upscale-status")
    page.set_input_files("#upscale-form input[type=file]", str(png))
    page.select_option("#upscale-form select[name=scale]", "2")
    page.click("#upscale-form button[type=submit]")
    page.wait_for_function("document.querySelector('#after').naturalWidth === 256")
    assert page.inner_text("#upscale-status") == ""
    page.check("#faces-option input")  # face-aware: the butterfly has no face, so the count is 0
    page.click("#upscale-form button[type=submit]")
    page.wait_for_function("document.querySelector('#upscale-meta').textContent.includes('face(s) enhanced')")
    assert "0 face(s) enhanced" in page.inner_text("#upscale-meta")
    page.close()


def test_degrade_tab_keyboard_and_mobile(server, browser, images, tmp_path):
    png, _ = images
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(server.url + "/")
    page.focus("#tab-upscale")
    page.keyboard.press("ArrowLeft")  # wraps to the last tab: Degrade
    assert page.get_attribute("#tab-degrade", "aria-selected") == "true" and page.is_visible("#panel-degrade")
    page.set_input_files("#degrade-form input[type=file]", str(png))
    page.fill("#degrade-form input[name=seed]", "7")
    page.keyboard.press("Enter")  # submits the form from the seed field
    page.wait_for_selector("#degrade-result:not([hidden])", timeout=60_000)
    assert page.eval_on_selector("#degraded", "i => i.naturalWidth") == 32
    assert "seed 7" in page.inner_text("#degrade-meta")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing overflows sideways
    shots(page, "web-degrade-mobile", tmp_path)

    # Text to image is offered exactly when the server has a text-to-image model (tested with one below).
    shipped = page.evaluate("fetch('/v1/models').then(r => r.json()).then(b => b.models.some(m => m.task === 'text-to-image'))")
    assert page.is_visible("#tab-t2i") == shipped
    if shipped:  # the shipped generator on a phone: four flowers with their seeds
        page.click("#tab-t2i")
        page.fill("#t2i-form input[name=prompt]", "this flower has bright yellow petals and a dark center")
        page.fill("#t2i-form input[name=seed]", "1")
        page.click("#t2i-form button[type=submit]")
        page.wait_for_function("document.querySelectorAll('#t2i-grid img').length === 4 && "
                               "[...document.querySelectorAll('#t2i-grid img')].every(i => i.complete && i.naturalWidth === 256)",
                               timeout=120_000)
        assert "t2i-flowers64 + sr-x4" in page.inner_text("#t2i-meta")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shots(page, "web-t2i-mobile", tmp_path)
    page.close()


@pytest.fixture(scope="module")
def t2i_server(tmp_path_factory):
    """The stand-in text models (tests/t2i_standins.py) and a nearest-neighbour x4 as the upscaler."""
    d = tmp_path_factory.mktemp("t2i-page-models")
    write_nearest_model(d, "nearest-x4", 4)
    write_t2i_models(d)
    write_lapgan(d)
    write_style_encoder(d)
    srv = ServerProcess({"GAN_MODELS_DIR": str(d)})
    yield srv
    srv.stop()


def test_text_to_image_tab(t2i_server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(t2i_server.url + "/")
    page.wait_for_selector("#tab-t2i:not([hidden])")  # offered: the server has a text-to-image model
    page.focus("#tab-upscale")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#tab-t2i", "aria-selected") == "true" and page.is_visible("#panel-t2i")
    page.fill("#t2i-form input[name=prompt]", "a red flower with a dark center")
    page.fill("#t2i-form input[name=n]", "3")
    page.fill("#t2i-form input[name=seed]", "5")
    page.select_option("#t2i-form select[name=size]", "64")
    page.click("#t2i-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#t2i-grid figure img').length === 3 && "
                           "[...document.querySelectorAll('#t2i-grid img')].every(i => i.complete && i.naturalWidth === 64)")
    assert [c.split(" ·")[0] for c in page.locator("#t2i-grid figcaption").all_inner_texts()] == ["seed 5", "seed 6", "seed 7"]
    assert "t2i-test64: 3 × 64 px" in page.inner_text("#t2i-meta")
    assert page.get_attribute("#t2i-grid figure:nth-child(2) a", "download") == "text-to-image_seed6.png"

    # A prompt of spaces passes the browser's `required` but not the server: the error is shown in words.
    page.fill("#t2i-form input[name=prompt]", "   ")
    page.click("#t2i-form button[type=submit]")
    page.wait_for_selector("#t2i-status.error")
    assert "prompt" in page.inner_text("#t2i-status")

    # One image at 256 px: the 64 px image through the x4 upscaler; the page is still usable after the error.
    page.fill("#t2i-form input[name=prompt]", "a white flower")
    page.fill("#t2i-form input[name=n]", "1")
    page.select_option("#t2i-form select[name=size]", "256")
    page.click("#t2i-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#t2i-grid img').length === 1 && "
                           "document.querySelector('#t2i-grid img').naturalWidth === 256")
    assert "seed 5" in page.inner_text("#t2i-grid figcaption") and "+ nearest-x4" in page.inner_text("#t2i-meta")
    assert page.inner_text("#t2i-status") == ""
    page.screenshot(path=str(tmp_path / "t2i-standins.png"), full_page=True)  # stand-in images: never for docs/

    # LAPGAN: detail draws of one composition; then a style image, sent as a file in a multipart form.
    assert not page.is_visible("#t2i-form input[name=detail_seed]")
    page.select_option("#t2i-form select[name=generator]", "lapgan")
    page.fill("#t2i-form input[name=n]", "2")
    page.fill("#t2i-form input[name=detail_seed]", "20")
    page.check("#t2i-form input[name=vary]")
    page.select_option("#t2i-form select[name=size]", "64")
    page.click("#t2i-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#t2i-grid figure img').length === 2 && "
                           "[...document.querySelectorAll('#t2i-grid img')].every(i => i.complete && i.naturalWidth === 64)")
    assert [c.split(" ·")[0] for c in page.locator("#t2i-grid figcaption").all_inner_texts()] == ["seed 5 detail 20", "seed 5 detail 21"]
    assert "t2i-lap-test64" in page.inner_text("#t2i-meta")
    assert page.get_attribute("#t2i-grid figure:nth-child(2) a", "download") == "text-to-image_seed5_detail21.png"
    style = tmp_path / "style.png"
    Image.new("RGB", (40, 40), (200, 40, 90)).save(style)
    page.select_option("#t2i-form select[name=generator]", "")
    page.fill("#t2i-form input[name=n]", "1")
    page.set_input_files("#t2i-form input[name=style_image]", str(style))
    with page.expect_response("**/text-to-image") as answer:
        page.click("#t2i-form button[type=submit]")
    assert answer.value.status == 200 and answer.value.headers["x-style-encoder"] == "style-t2i-test64"
    assert "multipart/form-data" in answer.value.request.headers["content-type"]
    page.close()
