"""The stylisation page: its JSON API on tiny random checkpoints, and the real page driven in
headless Chromium over loopback (where Debian's chromium and chromedriver are installed)."""

from __future__ import annotations

import base64
import io
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from eval_helpers import tiny_checkpoints  # noqa: E402

from workflow.web.app import create_app  # noqa: E402
from workflow.web.stylist import Stylist  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    skimage = pytest.importorskip("skimage")
    root = tmp_path_factory.mktemp("web")
    paths = tiny_checkpoints(root / "models")
    astronaut = skimage.data.astronaut()
    Image.fromarray(astronaut).save(root / "astronaut.png")
    Image.fromarray(np.concatenate([astronaut, astronaut], axis=1)).save(root / "two.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "noise.png")
    (root / "notes.txt").write_text("not an image\n")
    return {**paths, **{p.stem: p for p in root.iterdir() if p.is_file()}, "root": root}


@pytest.fixture(scope="module")
def stylist(files):
    return Stylist(files["blendgan"], files["psp"], device="cpu")


@pytest.fixture
def client(stylist):
    return create_app(stylist).test_client()


def post(client, **fields):
    data = {k: (io.BytesIO(Path(v).read_bytes()), Path(v).name) if isinstance(v, Path) else str(v)
            for k, v in fields.items()}
    return client.post("/api/stylise", data=data, content_type="multipart/form-data")


def png(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_random_face_natural_output_is_the_generators_face(client, stylist):
    r = post(client, face="random", face_seed=3, style="latent", style_seed=1, indicator=18,
             truncation=0.75)
    assert r.status_code == 200, r.json
    g = stylist.models["generator"]
    z = torch.randn(1, g.style_dim, generator=torch.Generator().manual_seed(3))
    expect = np.asarray(stylist.render(stylist.random_face(3), stylist.latent_style(9), 18, 0.75))
    assert png(r.json["image"]).size == (g.resolution, g.resolution)
    assert np.array_equal(np.asarray(png(r.json["image"]).convert("RGB")), expect)  # i = 18 ignores z_s
    stylised = post(client, face="random", face_seed=3, style="latent", style_seed=1, indicator=0)
    assert not np.array_equal(np.asarray(png(stylised.json["image"]).convert("RGB")), expect)
    assert torch.equal(stylist.random_face(3).z, z)


def test_photo_with_a_reference_style_and_the_sweep(client, files, stylist):
    pytest.importorskip("dlib")
    r = post(client, face="photo", photo=files["astronaut"], style="upload",
             style_image=files["noise"], indicator=6, sweep=1)
    assert r.status_code == 200, r.json
    res = stylist.models["generator"].resolution
    assert png(r.json["image"]).size == (res, res)
    assert png(r.json["crop"]).size == (256, 256)  # the aligned crop pSp inverted
    assert png(r.json["sweep"]).size[0] > 19 * 96


@pytest.mark.parametrize("name, fields, message", [
    ("not an image", {"face": "photo", "photo": "notes"}, "the photo is not an image"),
    ("no face", {"face": "photo", "photo": "noise"}, "no face was found"),
    ("two faces", {"face": "photo", "photo": "two"}, "faces were found in the photo"),
    ("no photo", {"face": "photo"}, "no photo was uploaded"),
    ("bad indicator", {"indicator": 19}, "indicator must be 0..18"),
    ("not a number", {"truncation": "high"}, "truncation must be a number"),
    ("no style set", {"style": "set", "style_index": 0}, "without --style-lmdb"),
])
def test_bad_requests_are_answered_with_a_message(client, files, name, fields, message):
    if "photo" in fields:
        pytest.importorskip("dlib")
        fields = dict(fields, photo=files[fields["photo"]])
    r = post(client, **fields)
    assert r.status_code == 400 and message in r.json["error"], r.json


def test_upload_over_the_cap_is_refused_and_the_server_goes_on(stylist, files):
    client = create_app(stylist, max_upload_mb=0.01).test_client()
    r = post(client, face="photo", photo=files["astronaut"])
    assert r.status_code == 413 and "larger than" in r.json["error"]
    assert post(client, face="random").status_code == 200


def test_an_unexpected_failure_is_a_message_and_the_server_goes_on(stylist, monkeypatch):
    client = create_app(stylist).test_client()
    with monkeypatch.context() as m:
        m.setattr(stylist, "render", lambda *a: (_ for _ in ()).throw(RuntimeError("out of memory")))
        r = post(client, face="random")
    assert r.status_code == 500 and r.json["error"] == "stylisation failed: RuntimeError: out of memory"
    assert post(client, face="random").status_code == 200
    assert client.get("/nowhere").status_code == 404


def test_no_upload_is_left_on_disk(client, tmp_path, monkeypatch):
    """Large uploads spool to temporary files (werkzeug, over 500 kB): none may remain."""
    import tempfile
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (700, 700, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 1_000_000
    r = post(client, face="random", style="upload", style_image=big)
    assert r.status_code == 200, r.json
    assert list(spool.iterdir()) == []


def test_a_checkpoint_that_does_not_load_is_shown_not_fatal(files):
    bad = files["root"] / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    client = create_app(Stylist(bad, device="cpu")).test_client()
    status = client.get("/api/status").json
    assert status["ok"] is False and "broken.pt could not be loaded" in status["error"]
    r = post(client, face="random")
    assert r.status_code == 400 and "could not be loaded" in r.json["error"]
    assert client.get("/").status_code == 200


def test_style_set_is_offered_and_used(files, tmp_path):
    from train_helpers import make_lmdb
    lmdb, _ = make_lmdb(tmp_path, n=5, size=16)
    st = Stylist(files["blendgan"], style_lmdb=lmdb, device="cpu")
    client = create_app(st).test_client()
    assert client.get("/api/status").json["style_set"] == 5
    thumb = client.get("/api/styles/4.png")
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.data)).size == (16, 16)
    assert client.get("/api/styles/5.png").status_code == 400
    a, b = (post(client, style="set", style_index=i, indicator=0).json["image"] for i in (0, 3))
    assert a != b  # two references of the set, two outputs


def test_cli_help(capsys):
    from workflow.web.__main__ import main
    with pytest.raises(SystemExit) as err:
        main(["--help"])
    assert err.value.code == 0 and "127.0.0.1" in capsys.readouterr().out


# ------------------------------------------------------------------------- the real page
def chromium_driver():
    webdriver = pytest.importorskip("selenium.webdriver")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("headless browser test: Debian's chromium and chromium-driver are not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1000"):
        opts.add_argument(arg)
    from selenium.webdriver.chrome.service import Service
    return webdriver.Chrome(options=opts, service=Service(driver))


@pytest.fixture
def served(stylist):
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, create_app(stylist), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_page_in_headless_chromium(served, files, stylist):
    pytest.importorskip("dlib")
    browser = chromium_driver()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    wait = WebDriverWait(browser, 60)
    find = lambda css: browser.find_element(By.CSS_SELECTOR, css)  # noqa: E731
    try:
        browser.get(served)
        wait.until(lambda b: "px generator" in find("#status").text)
        find("#photo").send_keys(str(files["astronaut"]))
        find("#style-image").send_keys(str(files["noise"]))
        answered = lambda: int(find("body").get_attribute("data-answered") or 0)  # noqa: E731
        find("#run").click()
        wait.until(lambda b: answered() == 1)
        first = find("#result").get_attribute("src")
        assert first.startswith("data:image/png") and find("#message").text == ""
        find("#indicator").send_keys(*[Keys.ARROW_LEFT] * 6)  # the slider, by keyboard: 6 -> 0
        wait.until(lambda b: find("#indicator-value").text == "0" and answered() >= 2)
        wait.until(lambda b: find("#result").get_attribute("src") != first)  # i = 0 draws another image
        assert find("#message").text == ""
        res = stylist.models["generator"].resolution
        assert png(find("#result").get_attribute("src")).size == (res, res)
        assert find("#crop").is_displayed() and find("#download").get_attribute("href").startswith("data:")
        find("#photo").send_keys(str(files["notes"]))  # a bad upload: the page says why
        done = answered()
        find("#run").click()
        wait.until(lambda b: answered() > done)
        assert "not an image" in find("#message").text
    finally:
        browser.quit()
