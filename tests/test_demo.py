"""``zoo demo``: the app's answers (fast, through Starlette's test client) and the page as a person uses
it (slow: ``zoo demo`` as a subprocess on a free loopback port, driven by Debian's headless Chromium
through Selenium). Bad inputs are messages in the page and the server answers the next request; 20
concurrent requests to the classifier tab are all answered, each with its own text.

``ZOO_DEMO_SCREENSHOTS=DIR`` makes the browser test write a screenshot of every tab there (the
README's: ``ZOO_DEMO_SCREENSHOTS=docs/img/demo python -m pytest -m slow tests/test_demo.py -k browser``)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
REVIEWS = [
    f"Review {i}: "
    + ("a wonderful, moving film, the best acting I have seen" if i % 2 else "a dull, boring mess, the worst film of the year")
    for i in range(20)
]


# ---- bad files, made here --------------------------------------------------------------------
def truncated_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (96, 96), (200, 40, 40)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    return data[: len(data) // 2]


BAD_FILES = {
    "notes.png": b"this is text, not an image\n",
    "photo.jpg": truncated_jpeg(),
    "clip.mp4": b"not a video at all\n" * 50,
}


# ---- fast: the app through Starlette's test client ---------------------------------------------
@pytest.fixture(scope="module")
def client():
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from zoo.demo.app import build_app, load_tabs

    return TestClient(build_app(load_tabs(["imdb_bigru", "shapes_caption_soft", "moving_shapes_gru"])))


def test_nothing_imports_the_demo():
    """The demo sits on top, beside zoo.cli: no module imports it (the command table names it as a string)."""
    from tests.test_architecture import import_graph

    graph = import_graph()
    importers = {
        m for m, targets in graph.items() if any(t.startswith("zoo.demo") for t in targets) and not m.startswith("zoo.demo")
    }
    assert importers == set()
    assert "zoo.demo.tabs" in graph["zoo.demo.app"] and "zoo.cli.common" in graph["zoo.demo.tabs"]


def test_card_example_inputs_are_the_commands_inputs():
    from zoo.demo.tabs import example_input

    assert example_input('zoo sample char_lstm_shakespeare --prime "ROMEO:" --length 300') == "ROMEO:"
    assert (
        example_input('zoo answer shapes_vqa_san --draw-example shapes.png "what colour is the circle?" --output fig.png')
        == "what colour is the circle?"
    )
    assert example_input("zoo caption shapes_caption_soft --draw-example shapes.png --output fig.png") == ""


def test_classifier_answers_label_probability_and_word_effects(client):
    page = client.get("/")
    assert page.status_code == 200 and "imdb_bigru" in page.text and "__ZOO_TABS__" not in page.text
    answer = client.post("/api/imdb_bigru/classify", json={"text": "A wonderful, moving film."})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["label"] == "pos" and data["probability"] > 0.5
    assert [w["token"] for w in data["words"]] == ["a", "wonderful", ",", "moving", "film", "."]
    assert max(data["words"], key=lambda w: w["effect"])["token"] == "wonderful"
    assert data["figure"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    "name, action, kwargs, message",
    [
        ("imdb_bigru", "classify", {"json": {"text": ""}}, "the review is empty"),
        (
            "imdb_bigru",
            "classify",
            {"content": json.dumps({"text": "word " * 1_000_000})},
            "this tab takes at most 1,048,576 bytes",
        ),
        ("imdb_bigru", "classify", {"content": b"{not json"}, "not UTF-8 JSON"),
        (
            "shapes_caption_soft",
            "caption",
            {"content": BAD_FILES["notes.png"], "headers": {"X-Filename": "notes.png"}},
            "notes.png: cannot decode the image",
        ),
        (
            "shapes_caption_soft",
            "caption",
            {"content": BAD_FILES["photo.jpg"], "headers": {"X-Filename": "photo.jpg"}},
            "photo.jpg: cannot decode the image",
        ),
        (
            "shapes_caption_soft",
            "caption",
            {"content": b"", "headers": {"X-Filename": "empty.png"}},
            "empty.png: the file is empty",
        ),
        (
            "moving_shapes_gru",
            "label",
            {"content": BAD_FILES["clip.mp4"], "headers": {"X-Filename": "clip.mp4"}},
            "clip.mp4: cannot decode video",
        ),
        ("imdb_bigru", "caption", {"json": {}}, "tab 'imdb_bigru' has no action 'caption'"),
        ("nope", "classify", {"json": {}}, "no tab 'nope'"),
    ],
)
def test_a_bad_input_is_a_message_and_the_next_request_is_answered(client, name, action, kwargs, message):
    bad = client.post(f"/api/{name}/{action}", **kwargs)
    assert 400 <= bad.status_code < 500
    error = bad.json()["error"]
    assert message in error and "Traceback" not in error and "/tmp/" not in error, error
    assert client.post("/api/imdb_bigru/classify", json={"text": "a fine film"}).status_code == 200


def test_an_upload_over_the_limit_is_refused_by_size(client):
    from zoo.demo.app import MAX_UPLOAD_BYTES

    big = client.post(
        "/api/shapes_caption_soft/caption", content=b"\xff" * (MAX_UPLOAD_BYTES + 1), headers={"X-Filename": "big.png"}
    )
    assert big.status_code == 413
    assert (
        big.json()["error"] == f"the input is {MAX_UPLOAD_BYTES + 1:,} bytes; this tab takes at most {MAX_UPLOAD_BYTES:,} bytes"
    )
    assert client.post("/api/shapes_caption_soft/caption", params={"example": "1"}).status_code == 200


def test_examples_are_drawn_and_answered(client):
    caption = client.post("/api/shapes_caption_soft/caption", params={"example": "1"}).json()
    assert caption["words"] and caption["caption"] == " ".join(caption["words"])
    assert "true caption" in caption["note"] and "/tmp/" not in caption["note"]
    clip = client.post("/api/moving_shapes_gru/label", params={"example": "1"}).json()
    assert clip["frames"] == len(clip["labels"]) == sum(n for _, n in clip["runs"]) > 0
    assert clip["strip"].startswith("data:image/png;base64,")


def test_upload_names_are_reduced_to_safe_file_names():
    from zoo.demo.app import upload_name

    class Request:
        def __init__(self, name: str) -> None:
            self.headers = {"x-filename": name}

    assert upload_name(Request("../../etc/passwd")) == "passwd"
    assert upload_name(Request("my%20clip.mp4")) == "my_clip.mp4"
    assert upload_name(Request("x.p$g")) == "x"


# ---- slow: the command, the page, a real browser -----------------------------------------------
def browser_missing() -> str:
    """Why no browser test can run here ("" when one can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return 'selenium is not installed (pip install -e ".[dev]")'
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    return f"no browser: {', '.join(missing)} missing (apt-get install chromium chromium-driver)" if missing else ""


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """``zoo demo --port 0`` (every shipped model) as a user starts it: its URL. Its output has no traceback."""
    pytest.importorskip("uvicorn")
    from zoo.demo.client import running

    lines: List[str] = []
    with running([], log=lines) as url:
        yield url
    assert "Traceback" not in "".join(lines), "".join(lines)[-3000:]


@pytest.fixture(scope="module")
def browser(demo):
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):  # no name resolves: no network
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(120)
    driver.get(demo)
    yield driver
    driver.quit()


def wait(driver, check, timeout: float = 120.0, what: str = "") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: check(d), message=what)


def element(driver, element_id: str):
    return driver.find_element("id", element_id)


def open_tab(driver, name: str) -> None:
    element(driver, f"tab-{name}").click()
    assert element(driver, f"panel-{name}").is_displayed()


def run(driver, name: str, button: str, done) -> Any:
    """Click ``button`` of tab ``name`` and wait for ``done(driver)`` (or the tab's error message)."""
    element(driver, f"{name}-status").get_attribute("id")
    driver.execute_script(f"document.getElementById('{name}-status').textContent = ''")
    element(driver, button).click()
    wait(driver, lambda d: element(d, f"{name}-status").text == "done" or element(d, f"{name}-error").text, what=f"{button}")
    error = element(driver, f"{name}-error").text
    assert not error, error
    return wait(driver, done, what=f"{button}: the answer")


def error_after(driver, name: str, button: str) -> str:
    """Click ``button``; the message the tab shows."""
    driver.execute_script(f"document.getElementById('{name}-error').textContent = ''")
    element(driver, button).click()
    return wait(driver, lambda d: element(d, f"{name}-error").text, what=f"{button}: a message")


def image_size(driver, image_id: str) -> Tuple[int, int]:
    wait(
        driver,
        lambda d: d.execute_script(f"const i = document.getElementById('{image_id}'); return i.complete && i.naturalWidth > 0"),
        what=f"the image {image_id}",
    )
    return tuple(
        driver.execute_script(f"const i = document.getElementById('{image_id}'); return [i.naturalWidth, i.naturalHeight]")
    )


def type_into(driver, element_id: str, text: str) -> None:
    box = element(driver, element_id)
    box.clear()
    box.send_keys(text)


def screenshot(driver, name: str) -> None:
    """The whole panel of tab ``name`` as ``$ZOO_DEMO_SCREENSHOTS/NAME.png`` (beyond the window's height:
    an element screenshot would stop at the viewport)."""
    folder = os.environ.get("ZOO_DEMO_SCREENSHOTS")
    if not folder:
        return
    import base64

    x, y, width, height = driver.execute_script(
        f"const r = document.getElementById('panel-{name}').getBoundingClientRect();"
        "return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height]"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": x, "y": y, "width": width, "height": min(height, 4000), "scale": 1},
        },
    )
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def expected_heatmap_size(text: str) -> Tuple[int, int]:
    """The PNG zoo.viz.heatmap_png draws for the tab's first SHOW_CHARS characters, 80 columns wide."""
    from zoo.demo.tabs import SHOW_CHARS
    from zoo.viz import CELL_H, CELL_W, TITLE_H, layout

    rows = min(layout(text[:SHOW_CHARS], 80)[-1][0] + 1, 60)
    return round(80 * CELL_W * 100), round((rows * CELL_H + TITLE_H) * 100)


@pytest.mark.slow
def test_every_tab_in_a_real_browser(browser, demo, tmp_path):
    driver = browser
    tabs = driver.execute_script("return TABS.map((t) => [t.name, t.kind])")
    from zoo.hub.registry import list_models

    assert [n for n, _ in tabs] == list_models(pretrained=True)  # a tab per shipped model
    for name, kind in tabs:
        open_tab(driver, name)
        panel = element(driver, f"panel-{name}").text
        assert name in panel
        if kind == "char_lm":
            type_into(driver, f"{name}-prime", "The ")
            type_into(driver, f"{name}-length", "120")
            sample = run(
                driver,
                name,
                f"{name}-sample-run",
                lambda d: len(element(d, f"{name}-sample").text) >= 4 + 100 and element(d, f"{name}-sample"),
            )
            assert sample.text.startswith("The ")
            text = (REPO / "zoo" / "features.py").read_text(encoding="utf-8")[:3000]
            driver.execute_script(f"document.getElementById('{name}-units-text').value = arguments[0]", text)
            run(driver, name, f"{name}-units-run", lambda d: element(d, f"{name}-unit-picker").get_attribute("value"))
            options = [o.text for o in element(driver, f"{name}-unit-picker").find_elements("tag name", "option")]
            assert any(o.startswith("indentation:") for o in options) and any(o.startswith("quotes:") for o in options)
            assert any(o.startswith("line position:") for o in options), options
            assert image_size(driver, f"{name}-heatmap") == expected_heatmap_size(text)
            first = element(driver, f"{name}-heatmap").get_attribute("src")
            from selenium.webdriver.support.ui import Select

            Select(element(driver, f"{name}-unit-picker")).select_by_index(len(options) - 1)
            wait(driver, lambda d: element(d, f"{name}-heatmap").get_attribute("src") != first, what="another unit's heatmap")
        elif kind == "classifier":
            type_into(driver, f"{name}-text", "A wonderful, moving film with brilliant acting.")
            label = run(driver, name, f"{name}-run", lambda d: element(d, f"{name}-label").text)
            assert label.startswith("pos (p = ")
            words = [w.text for w in element(driver, f"{name}-words").find_elements("tag name", "span")]
            assert words[:3] == ["a", "wonderful", ","]
            assert image_size(driver, f"{name}-figure")[0] > 0
        elif kind == "translator":
            type_into(driver, f"{name}-text", "Ein Hund läuft über die Wiese.")
            translation = run(driver, name, f"{name}-run", lambda d: element(d, f"{name}-translation").text)
            assert translation == "A dog is running across the grass."
            assert "A dog" in element(driver, f"{name}-beams").text
            assert image_size(driver, f"{name}-alignment")[0] > 0
        elif kind in ("captioner", "vqa"):
            caption = run(driver, name, f"{name}-example", lambda d: element(d, f"{name}-answer").text)
            if kind == "captioner":
                assert re.fullmatch(r"a (red|green|blue|yellow|purple|orange|white|gray|grey)\b.*", caption), caption
                assert "true caption" in element(driver, f"{name}-note").text
            else:
                assert re.fullmatch(r"\w+ \(p = [01]\.\d{3}\)", caption), caption
            width, height = image_size(driver, f"{name}-figure")
            assert width > 300 and height > 150
        else:
            runs = run(driver, name, f"{name}-example", lambda d: element(d, f"{name}-answer").text)
            assert re.fullmatch(r"(\w+ ×\d+)(, \w+ ×\d+)*", runs), runs
            assert image_size(driver, f"{name}-figure")[0] > 0
        screenshot(driver, name)
    # nothing was fetched from anywhere but the demo itself (the page, its API)
    fetched = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert fetched and all(url.startswith(demo) for url in fetched), [u for u in fetched if not u.startswith(demo)]


@pytest.mark.slow
def test_bad_inputs_in_the_page_are_messages(browser, tmp_path):
    driver = browser
    open_tab(driver, "imdb_bigru")
    type_into(driver, "imdb_bigru-text", "")
    assert "the review is empty" in error_after(driver, "imdb_bigru", "imdb_bigru-run")
    driver.execute_script("document.getElementById('imdb_bigru-text').value = 'word '.repeat(1000000)")  # 5 MB
    assert "at most 1,048,576 bytes" in error_after(driver, "imdb_bigru", "imdb_bigru-run")
    for name, filename, message in [
        ("shapes_caption_soft", "notes.png", "notes.png: cannot decode the image"),
        ("shapes_caption_soft", "photo.jpg", "photo.jpg: cannot decode the image"),
        ("shapes_vqa_san", "photo.jpg", "photo.jpg: cannot decode the image"),
        ("moving_shapes_gru", "clip.mp4", "clip.mp4: cannot decode video"),
    ]:
        path = tmp_path / filename
        path.write_bytes(BAD_FILES[filename])
        open_tab(driver, name)
        element(driver, f"{name}-file").send_keys(str(path))
        shown = error_after(driver, name, f"{name}-run")
        assert message in shown and "Traceback" not in shown, shown
    # the server still answers, in the page
    open_tab(driver, "imdb_bigru")
    type_into(driver, "imdb_bigru-text", "a dull and boring film")
    assert run(driver, "imdb_bigru", "imdb_bigru-run", lambda d: element(d, "imdb_bigru-label").text).startswith("neg")


@pytest.mark.slow
def test_twenty_concurrent_classifier_requests_are_all_answered(demo):
    from zoo.demo.client import post

    with ThreadPoolExecutor(max_workers=len(REVIEWS)) as pool:
        answers = list(pool.map(lambda text: post(demo, "imdb_bigru", "classify", {"text": text}), REVIEWS))
    assert [status for status, _, _ in answers] == [200] * len(REVIEWS)
    for text, (_, data, _) in zip(REVIEWS, answers):  # each answer is its own request's
        assert [w["token"] for w in data["words"]][:2] == ["review", text.split()[1].rstrip(":")]
        assert data["label"] == ("pos" if "wonderful" in text else "neg")


@pytest.mark.slow
def test_the_sample_streams_and_a_busy_port_is_one_line(demo):
    import http.client
    from urllib.parse import urlparse

    where = urlparse(demo)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=120)
    connection.request(
        "POST",
        "/api/char_lstm_shakespeare/sample",
        body=json.dumps({"prime": "ROMEO:", "length": 200, "seed": 3}),
        headers={"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("transfer-encoding") == "chunked"
    first = response.read1()
    rest = response.read()
    assert first.decode() == "ROMEO:" and len((first + rest).decode()) == len("ROMEO:") + 200
    busy = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "demo", "imdb_bigru", "--port", str(where.port)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert busy.returncode == 2
    assert busy.stderr.strip().splitlines()[-1].startswith(f"zoo demo: error: cannot listen on 127.0.0.1:{where.port}")
    unknown = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "demo", "imdb_bigrux"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unknown.returncode == 2 and "unknown model 'imdb_bigrux'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_browser_skip_reason_names_what_is_missing(monkeypatch):
    pytest.importorskip("selenium")
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", Path("/nonexistent/chromium"))
    assert browser_missing() == "no browser: /nonexistent/chromium missing (apt-get install chromium chromium-driver)"
