"""Screenshot of the stylisation page on the demo's checkpoints, and the latency of one request.

    python scripts/web_screenshot.py --results results --out docs/web_page.png

Serves ``python -m workflow.web`` in-process on loopback, measures three requests over HTTP
(random face with a latent style; the scikit-image astronaut photo with a style-set reference;
the same with the indicator sweep), each the median of --repeat runs after one warm-up, then
drives the page in headless Chromium (photo upload, a style from the set, the indicator slider)
and saves the window. Needs Debian's chromium and chromium-driver, selenium and scikit-image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def timed(url, repeat, files=None, **form):
    times = []
    for _ in range(repeat + 1):  # the first is a warm-up
        start = time.perf_counter()
        r = requests.post(url, data=form, files=files() if files else None, timeout=300)
        times.append(time.perf_counter() - start)
        r.raise_for_status()
    return round(statistics.median(times[1:]), 3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="results", help="the demo run's output folder")
    p.add_argument("--out", default="docs/web_page.png")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    import skimage.data
    import torch
    from werkzeug.serving import make_server

    from workflow.evaluate.common import machine
    from workflow.web.app import create_app
    from workflow.web.stylist import Stylist

    torch.set_num_threads(a.threads)
    r = Path(a.results)
    stylist = Stylist(r / "models/blendgan/blendgan.pt", r / "models/psp/psp.pt",
                      style_lmdb=r / "data/style/lmdb", device="cpu")
    server = make_server("127.0.0.1", 0, create_app(stylist), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    tmp = Path(tempfile.mkdtemp())
    photo = tmp / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(photo)
    upload = lambda: {"photo": ("astronaut.png", photo.read_bytes())}  # noqa: E731
    latency = {
        "random_face_latent_style": timed(f"{base}/api/stylise", a.repeat, face="random", style="latent"),
        "photo_style_set": timed(f"{base}/api/stylise", a.repeat, upload, face="photo", style="set",
                                 style_index=3),
        "photo_style_set_with_sweep": timed(f"{base}/api/stylise", a.repeat, upload, face="photo",
                                            style="set", style_index=3, sweep=1),
    }
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    from test_web import chromium_driver
    browser = chromium_driver()
    find = lambda css: browser.find_element(By.CSS_SELECTOR, css)  # noqa: E731
    answered = lambda: int(find("body").get_attribute("data-answered") or 0)  # noqa: E731
    try:
        wait = WebDriverWait(browser, 120)
        browser.set_window_size(1200, 1250)  # the sweep below the result in the picture
        browser.get(base)
        wait.until(lambda b: "px generator" in find("#status").text)
        find("#photo").send_keys(str(photo))
        find('#style-set img[data-index="3"]').click()
        find("#indicator").send_keys(*[Keys.ARROW_LEFT] * 3)  # i = 3
        wait.until(lambda b: answered() >= 1)
        find("#run-sweep").click()
        wait.until(lambda b: find("#sweep").is_displayed() and answered() >= 2)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(a.out)
    finally:
        browser.quit()
        server.shutdown()
    with Image.open(a.out) as im:
        size = im.size
    print(json.dumps({"latency_s": latency, "screenshot": a.out, "size": size,
                      "machine": dict(machine(), threads=a.threads)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
