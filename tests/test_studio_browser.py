"""The studio as a person uses it: a real server, driven in headless Chromium.

Marked `browser`: it needs the studio extra, Selenium and the system's Chromium and its driver
(Debian: `apt-get install chromium chromium-driver`; nothing downloads a browser). Run with

    python -m pytest -m browser

It starts `vidzero studio` on a free port, drops examples/red_circle.png on the page, runs a
short video, checks that the page shows it and that the files on disk equal a CLI run with the
same settings, then presses Stop in a second run, Resume, and checks the resumed video's bytes.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vidzero.app.cli import app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SETTINGS = ["--steps", "2", "--resample", "0", "--seed", "3", "--device", "cpu", "--quiet"]


@contextlib.contextmanager
def studio_in_browser(tmp_path: Path, model: str) -> Iterator[tuple[Any, Path, str]]:
    """`vidzero studio` on a free port with `model`, and headless Chromium on its page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    outputs = tmp_path / "outputs"
    gradio_default = Path(tempfile.gettempdir()) / "gradio"  # where Gradio writes unless told
    before = sorted(gradio_default.rglob("*")) if gradio_default.exists() else []
    server = subprocess.Popen(
        [sys.executable, "-m", "vidzero.app.cli", "studio", "--outputs", str(outputs)]
        + ["--model", model, "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    url = None
    deadline = time.time() + 120
    assert server.stdout is not None
    while url is None and time.time() < deadline:
        line = server.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        url = found.group(1) if found else None
    assert url, "the studio did not print its address"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.get(url)
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image input[type=file]"))
        yield driver, outputs, url
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)
    after = sorted(gradio_default.rglob("*")) if gradio_default.exists() else []
    assert after == before, "the studio wrote outside its outputs folder"


@pytest.fixture
def page(tmp_path, tiny_model_dir):
    with studio_in_browser(tmp_path, str(tiny_model_dir)) as opened:
        yield opened


def fill(driver, elem_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input, #{elem_id} textarea")
    field.clear()
    field.send_keys(value)


def status_says(driver, words: str, timeout: float = 180) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: words in d.find_element(By.ID, "status").text)
    return driver.find_element(By.ID, "status").text


def run_in_page(driver, name: str, frames: int) -> None:
    from selenium.webdriver.common.by import By

    fill(driver, "prompt", "a red circle")
    fill(driver, "frames", str(frames))
    fill(driver, "steps", "2")
    fill(driver, "seed", "3")
    fill(driver, "name", name)
    driver.find_element(By.ID, "run").click()


def served(address: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(address, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def cli_run(image: Path, out: Path, model: Path, frames: int) -> bytes:
    res = CliRunner().invoke(
        app,
        ["extend", str(image), "a red circle", "-o", str(out), "--frames", str(frames), "--model", str(model)]
        + SETTINGS,
    )
    assert res.exit_code == 0, res.output
    return out.read_bytes()


def test_a_person_makes_a_video_stops_a_run_and_resumes_it(page, tmp_path, tiny_model_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, outputs, url = page
    image = ROOT / "examples" / "red_circle.png"
    driver.find_element(By.CSS_SELECTOR, "#image input[type=file]").send_keys(str(image))
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image img"))

    # bad input: the CLI's line beside the fields, nothing written
    run_in_page(driver, "bad", 0)
    WebDriverWait(driver, 60).until(lambda d: "--frames" in d.find_element(By.ID, "error").text)
    assert not list(outputs.glob("bad.mp4*"))

    run_in_page(driver, "first", 5)
    assert "done" in status_says(driver, "done")
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video video"))
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#contact img"))
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#report img"))
    driver.save_screenshot(str(tmp_path / "studio.png"))
    made = (outputs / "first.mp4").read_bytes()
    assert made == cli_run(image, tmp_path / "cli-first.mp4", tiny_model_dir, 5)
    assert (outputs / "first.mp4.manifest.json").exists() and (outputs / "first.mp4.state.safetensors").exists()

    # a longer run, stopped once its first frames are on the page, then resumed
    run_in_page(driver, "second", 40)
    status_says(driver, "windows")  # this run is under way (not the first one's "done")
    WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#gallery img"))
    driver.find_element(By.ID, "stop").click()
    status_says(driver, "stopped")
    assert (outputs / "second.mp4.state.safetensors").exists() and not (outputs / "second.mp4").exists()
    driver.find_element(By.ID, "resume").click()
    status_says(driver, "done", timeout=300)
    assert (outputs / "second.mp4").read_bytes() == cli_run(image, tmp_path / "cli-second.mp4", tiny_model_dir, 40)
    for path, expected in ((outputs / "first.mp4", 200), (ROOT / "README.md", 403), (Path("/etc/passwd"), 403)):
        assert served(f"{url}gradio_api/file={path}") == expected, path  # the outputs folder only
    written = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(outputs in p.parents or p.parent == tmp_path for p in written)  # the page wrote in its folder only


def test_a_path_drawn_on_the_image_moves_the_object_along_it(tmp_path):
    """Two clicks on the image make a path (shown over it); the embedded model's video moves the
    circle along it."""
    import numpy as np
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from vidzero.media.video import read_video

    with studio_in_browser(tmp_path, "shapes") as (driver, outputs, _):
        image = ROOT / "examples" / "red_circle.png"  # 64x64, the circle's centre at 14,32
        driver.find_element(By.CSS_SELECTOR, "#image input[type=file]").send_keys(str(image))
        shown = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#image img"))
        width, height = shown.size["width"], shown.size["height"]
        for x, y in ((14, 32), (40, 32)):  # a click at the centre of pixel (x, y) of the image
            dx, dy = (x + 0.5) / 64 * width - width / 2, (y + 0.5) / 64 * height - height / 2
            ActionChains(driver).move_to_element_with_offset(shown, round(dx), round(dy)).click().perform()
            time.sleep(1.0)
        path = driver.find_element(By.CSS_SELECTOR, "#path textarea, #path input")
        WebDriverWait(driver, 30).until(lambda d: len(path.get_attribute("value").split()) == 2)
        points = [tuple(int(v) for v in p.split(",")) for p in path.get_attribute("value").split()]
        assert all(abs(a - b) <= 1 for p, q in zip(points, [(14, 32), (40, 32)]) for a, b in zip(p, q)), points
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#path-preview img"))
        fill(driver, "prompt", "a red circle moving right")
        fill(driver, "frames", "10")
        fill(driver, "name", "drawn")
        driver.find_element(By.ID, "run").click()
        status_says(driver, "done", timeout=300)
        frames = np.stack(list(read_video(outputs / "drawn.mp4")))

    def centre(frame):
        ys, xs = np.nonzero((frame[..., 0].astype(int) > 150) & (frame[..., 1] < 110))
        return np.array([xs.mean(), ys.mean()])

    end = np.array([points[-1][0], points[-1][1]]) + (centre(frames[0]) - np.array(points[0]))
    assert np.linalg.norm(centre(frames[-1]) - end) <= 4.0, (centre(frames[-1]), end)
    manifest = __import__("json").loads((outputs / "drawn.mp4.manifest.json").read_text())
    assert manifest["spec"]["inputs"]["path"] == [path_text(points)]


def path_text(points) -> str:
    return " ".join(f"{x},{y}" for x, y in points)
