"""The README's picture of vidzero studio: the page after an image-to-video run on the embedded
model, taken in the system's headless Chromium (Debian's chromium and chromium-driver).

    python -m recipes.figures.studio --out docs/images/studio.png

Starts `vidzero studio` on a free port with a fresh outputs folder, drops
examples/red_circle.png, runs "a red circle moving right" (16 frames, seed 0, the default
preset), waits for the result and saves the page, scaled to 1000 px wide.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/images/studio.png"))
    parser.add_argument("--model", default="shapes")
    parser.add_argument("--frames", type=int, default=16)
    a = parser.parse_args()
    place = Path(tempfile.mkdtemp())  # the server runs there, its outputs folder named relative to it
    outputs = place / "my-videos"
    server = subprocess.Popen(
        [sys.executable, "-m", "vidzero.app.cli", "studio", "--outputs", "my-videos", "--model", a.model],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=place,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert server.stdout is not None
    url = None
    while url is None:
        line = server.stdout.readline()
        if not line:
            sys.exit("the studio did not start")
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        url = found.group(1) if found else None
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 600)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image input[type=file]"))
        driver.find_element(By.CSS_SELECTOR, "#image input[type=file]").send_keys(str(ROOT / "examples/red_circle.png"))
        for elem_id, value in (("prompt", "a red circle moving right"), ("frames", str(a.frames))):
            field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input, #{elem_id} textarea")
            field.clear()
            field.send_keys(value)
        started = time.time()
        driver.find_element(By.ID, "run").click()
        wait.until(lambda d: "done" in d.find_element(By.ID, "status").text)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#report img"))
        time.sleep(2)  # the pictures finish loading
        print(f"run finished in {time.time() - started:.0f} s")
        shot = outputs / ".studio" / "page.png"
        driver.save_screenshot(str(shot))
        image = Image.open(shot).convert("RGB")
        image = image.resize((1000, round(image.height * 1000 / image.width)), Image.LANCZOS)
        # a palette of 128 colours: the page is flat colours and text, a quarter of the bytes
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(a.out, optimize=True)
        print(f"wrote {a.out} ({a.out.stat().st_size // 1024} KiB)")
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
