"""The Artstation scraper against a loopback imitation of the site, with injected faults."""
from __future__ import annotations

import math
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from workflow.dataset.artstation_json import is_noai
from workflow.dataset.download import ImageCheckError, check_image
from workflow.dataset.http_client import FetchError, PoliteClient, parse_retry_after
from workflow.dataset.loopback_artstation import FakeArtstation, build_catalogue, make_image_bytes
from workflow.dataset.manifest import Manifest, read_records
from workflow.dataset.names import sanitize_name
from workflow.dataset.scrape import ArtstationScraper, candidate_urls

ROOT = Path(__file__).resolve().parents[1]
DELAY = 0.02
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def client(**kw) -> PoliteClient:
    opts = dict(delay=DELAY, timeout=0.3, max_retries=3, backoff=0.01, backoff_cap=0.05, seed=0)
    opts.update(kw)
    return PoliteClient(**opts)


def scrape(site, out, per_page=4, max_projects=None, **kw) -> tuple[int, list[str]]:
    logs: list[str] = []
    scraper = ArtstationScraper(client(**kw), out, base_url=site.base_url, per_page=per_page,
                                max_projects=max_projects, progress=False, log=logs.append)
    return scraper.run(), logs


def manifest_by_asset(out) -> dict:
    return {r["asset_id"]: r for r in read_records(Path(out) / "manifest.jsonl")}


def expected_outcomes(cat) -> dict:
    """asset id -> "ok" or the skip reason, from the catalogue's own flags."""
    out = {}
    for project in cat.projects.values():
        reasons = []
        if is_noai(project["tags"]):
            reasons.append("noai_tag")
        if project["adult_content"]:
            reasons.append("adult_content")
        for asset in project["assets"]:
            if reasons:
                out[str(asset["id"])] = ",".join(reasons)
            elif asset["asset_type"] != "image":
                out[str(asset["id"])] = f"asset_type:{asset['asset_type']}"
            else:
                out[str(asset["id"])] = "ok"
    return out


def assert_rate(site, delay):
    times = sorted(r.t for r in site.requests)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= delay * 0.9, f"two requests {min(gaps):.4f}s apart (delay {delay})"


def image_files(out) -> dict:
    root = Path(out) / "images"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def site():
    with FakeArtstation(slow_s=0.6) as s:
        yield s


# -- unit tests ------------------------------------------------------------------------------
def test_noai_tags_and_variants():
    for tag in ["NoAI", "no ai", "No-AI", "NO_AI", " noai "]:
        assert is_noai(["portrait", tag]), tag
    assert is_noai([{"name": "No AI"}])
    assert not is_noai(["noair", "ai", "portrait"]) and not is_noai(None)
    url = "https://cdna.artstation.com/p/assets/images/images/001/large/x.jpg?123"
    assert candidate_urls(url) == [url.replace("/large/", "/4k/"), url]
    assert candidate_urls("https://x/y/medium/z.jpg") == ["https://x/y/medium/z.jpg"]


def test_sanitize_name_hostile():
    hostile = ["../../etc/passwd", "..", ".", "", "a/b\\c", "x\x00y.jpg", "con", "évil name;rm -rf",
               "a" * 300, ".bashrc", "normal-1.jpg"]
    names = [sanitize_name(h) for h in hostile]
    for n in names:
        assert SAFE_NAME.match(n) and not n.startswith(".") and len(n) <= 80 and n not in (".", "..")
    assert len(set(names)) == len(names)
    assert sanitize_name("normal-1.jpg") == "normal-1.jpg"


def test_check_image_caps_and_formats():
    fmt, w, h = check_image(make_image_bytes(1, 32))
    assert (fmt, w, h) == ("JPEG", 32, 32)
    with pytest.raises(ImageCheckError, match="too_many_pixels"):
        check_image(make_image_bytes(1, 64), max_pixels=64 * 63)
    with pytest.raises(ImageCheckError, match="not_an_image"):
        check_image(b"<html>not an image</html>")
    with pytest.raises(ImageCheckError, match="not_an_image"):
        check_image(make_image_bytes(1, 64)[:300])  # truncated JPEG does not fully decode
    import io
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="TIFF")
    with pytest.raises(ImageCheckError, match="format_not_allowed"):
        check_image(buf.getvalue())


def test_retry_after_parsing():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert abs(parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=90.0) - 10.0) < 1e-6


def test_manifest_survives_torn_tail(tmp_path):
    path = tmp_path / "manifest.jsonl"
    m = Manifest(path)
    m.append({"project_id": "p", "asset_id": "1", "status": "failed"})
    m.append({"project_id": "p", "asset_id": "1", "status": "ok"})
    m.close()
    with open(path, "ab") as f:
        f.write(b'{"project_id": "p", "asset_id": "2", "sta')  # killed mid-write
    assert [r["asset_id"] for r in read_records(path)] == ["1", "1"]
    m = Manifest(path)
    assert m.get("p/1")["status"] == "ok" and m.get("p/2") is None
    m.append({"project_id": "p", "asset_id": "2", "status": "ok"})
    m.compact()
    m.close()
    assert [(r["asset_id"], r["status"]) for r in read_records(path)] == [("1", "ok"), ("2", "ok")]


def test_client_redirects_size_cap_and_user_agent(site):
    base = site.base_url
    large = next(p for p in site.cat.images if "/large/" in p)
    site.sticky["/moved"] = f"redirect:{large}"  # same host: followed
    assert client().get(base + "/moved").body == site.cat.images[large][0]
    other = f"http://localhost:{site.port}{large}"
    site.sticky["/away"] = f"redirect:{other}"  # another host: refused unless allowed
    with pytest.raises(FetchError, match="redirect_refused:localhost"):
        client().get(base + "/away")
    assert client(allow_hosts=("localhost",)).get(base + "/away").status == 200
    site.sticky["/file"] = "redirect:file:///etc/passwd"
    with pytest.raises(FetchError, match="redirect_refused:scheme"):
        client().get(base + "/file")
    with pytest.raises(FetchError, match="too_large") as err:
        client(max_bytes=100).get(base + large)
    assert err.value.attempts == 1  # a size violation is not retried
    assert all(r.user_agent.startswith("blendgan-repro") for r in site.requests)
    with pytest.raises(FetchError, match="unsupported_url"):
        client().get("file:///etc/passwd")


def test_recover_finishes_interrupted_commits(site, tmp_path):
    """A kill between the `ok` record and the rename: the .part file is renamed at start-up;
    an `ok` record whose file is gone is demoted so the asset is fetched again."""
    from workflow.dataset.download import Downloader, part_name
    rc, _ = scrape(site, tmp_path)
    ok = [r for r in manifest_by_asset(tmp_path).values() if r["status"] == "ok"]
    first, second = tmp_path / ok[0]["path"], tmp_path / ok[1]["path"]
    first.rename(part_name(first))
    second.unlink()
    (tmp_path / "images" / ".stray.jpg.part").write_bytes(b"partial")
    m = Manifest(tmp_path / "manifest.jsonl")
    d = Downloader(client(), tmp_path, m)
    assert first.is_file() and not part_name(first).exists()
    assert m.get(f"{ok[1]['project_id']}/{ok[1]['asset_id']}")["status"] == "failed"
    assert not list((tmp_path / "images").glob(".*"))
    assert d.done(f"{ok[0]['project_id']}/{ok[0]['asset_id']}")
    m.close()
    before = len(site.requests)
    scrape(site, tmp_path)
    fetched = {r.image for r in site.requests[before:] if r.image}
    assert fetched == {ok[1]["asset_id"]} and second.is_file()


# -- scraping --------------------------------------------------------------------------------
def test_clean_scrape_pages_dedups_and_records_reasons(site, tmp_path):
    rc, logs = scrape(site, tmp_path)
    assert rc == 0, logs
    records = manifest_by_asset(tmp_path)
    expected = expected_outcomes(site.cat)
    assert set(records) == set(expected)
    kinds = set()
    for aid, want in expected.items():
        rec = records[aid]
        if want == "ok":
            assert rec["status"] == "ok" and rec["reason"] is None
            data = (tmp_path / rec["path"]).read_bytes()
            import hashlib
            assert hashlib.sha256(data).hexdigest() == rec["sha256"] and len(data) == rec["size"]
            # the larger /4k/ variant when it exists (even ids), the given one otherwise
            assert rec["width"] == (48 if int(aid) % 2 == 0 else 24)
            assert ("/4k/" in rec["url"]) == (int(aid) % 2 == 0)
            project = site.cat.projects[rec["project_id"]]
            assert rec["artist"] == project["user"]["full_name"] and rec["title"] == project["title"]
            assert rec["project_url"] == project["permalink"]
        else:
            assert rec["status"] == "skipped" and rec["reason"] == want and rec["path"] is None
            kinds.add(want.split(":")[0])
    assert {"noai_tag", "adult_content", "asset_type"} <= kinds
    sent = site.images_sent()
    assert {a for a, n in sent.items() if n} == {a for a, w in expected.items() if w == "ok"}
    assert set(sent.values()) == {1}
    # each project JSON once although sort orders overlap; every listing page, no more
    project_gets = [r.path for r in site.requests if r.path.startswith("/projects/")]
    assert sorted(project_gets) == sorted(set(project_gets)) and len(project_gets) == len(site.cat.projects)
    for sorting, ids in site.cat.listings.items():
        pages = [r for r in site.requests if f"sorting={sorting}" in r.path]
        assert len(pages) == math.ceil(len(ids) / 4)
    assert_rate(site, DELAY)
    assert not list((tmp_path / "images").glob(".*"))
    # a rerun fetches nothing but the listing
    before = len(site.requests)
    assert scrape(site, tmp_path)[0] == 0
    assert not any(r.path.startswith(("/projects/", "/p/")) for r in site.requests[before:])


def test_max_projects_limit_and_publish(site, tmp_path):
    scrape(site, tmp_path / "a", max_projects=3)
    assert len({r["project_id"] for r in manifest_by_asset(tmp_path / "a").values()}) == 3
    from workflow.dataset.scrape import main
    mark = len(site.requests)
    args = ["--base-url", site.base_url, "--out", str(tmp_path / "work"), "--delay", "0",
            "--no-progress", "--publish", str(tmp_path / "pub")]
    assert main(args + ["--limit", "4"]) == 0
    ok = [r for r in read_records(tmp_path / "pub" / "manifest.jsonl") if r["status"] == "ok"]
    assert len(ok) == 4 and len(list((tmp_path / "pub" / "images").iterdir())) == 4
    assert main(args + ["--limit", "2"]) == 0  # a smaller limit publishes fewer, fetches nothing
    ok = [r for r in read_records(tmp_path / "pub" / "manifest.jsonl") if r["status"] == "ok"]
    assert len(ok) == 2 and len(list((tmp_path / "pub" / "images").iterdir())) == 2
    fetched = [r.image for r in site.requests[mark:] if r.image]
    assert len(fetched) == len(set(fetched)) == 4


def test_faults_are_retried_recorded_and_rate_limited(tmp_path):
    cat = build_catalogue(n_projects=10)
    # a hostile asset: id and URL name crafted to escape the output folder
    hostile_path = "/p/assets/images/666/large/..%2F..%2F..%2Fevil.php%00.jpg"
    cat.images[hostile_path] = (make_image_bytes(666), "image/jpeg", "../../../tmp/evil\x00id")
    cat.projects["P000x"]["assets"].append(
        {"id": "../../../tmp/evil\x00id", "asset_type": "image", "has_image": True,
         "image_url": hostile_path})
    with FakeArtstation(cat, slow_s=0.6, retry_after="1") as site:
        base = site.base_url
        img = lambda aid, v="large": f"/p/assets/images/{aid}/{v}/portrait-{aid}.jpg"  # noqa: E731
        site.faults.update({
            "/api/v2/community/channels/channels.json": ["429"],
            "/api/v2/community/channels/projects.json": ["ok", "503", "reset"],
            "/projects/P000x.json": ["500", "reset"],
            img(1001): ["slow"],  # slower than the 0.3 s timeout
            img(3000, "4k"): ["truncate", "503"],
            img(3001): ["reset", "truncate"],
        })
        site.sticky.update({
            img(5001): "500",  # fails for good after bounded retries
            img(5002, "4k"): "notimage",  # falls back to /large/, which is fine
            img(6001): "notimage",  # a non-image body with an image content type
            img(6000, "4k"): "challenge",  # one 403 challenge page: recorded, not fatal
            img(6000): "challenge",
            img(9000, "4k"): f"redirect:http://localhost:{site.port}{img(9000, '4k')}",
            img(9000): f"redirect:http://localhost:{site.port}{img(9000)}",
        })
        rc, logs = scrape(site, tmp_path)
        assert rc == 0, logs
        records = manifest_by_asset(tmp_path)
        expected = expected_outcomes(cat)
        failing = {"5001": "http_500", "6001": "not_an_image", "6000": "http_403_challenge",
                   "9000": "redirect_refused:localhost"}
        for aid, want in expected.items():
            rec = records[aid]
            if aid in failing:
                assert rec["status"] == "failed" and failing[aid] in rec["reason"], rec
            elif want == "ok":
                assert rec["status"] == "ok", rec
            else:
                assert rec["status"] == "skipped" and rec["reason"] == want
        # bounded retries: 5001 = one 404 for /4k/ + (1 + max_retries) for /large/
        assert records["5001"]["attempts"] == 1 + 4
        assert sum(img(5001) in r.path for r in site.requests) == 4
        assert records["5002"]["status"] == "ok" and "/large/" in records["5002"]["url"]
        assert records["3000"]["attempts"] == 3 and "/4k/" in records["3000"]["url"]
        # the hostile asset is stored under a safe name inside images/
        evil = records["../../../tmp/evil\x00id"]
        assert evil["status"] == "ok" and SAFE_NAME.match(Path(evil["path"]).name)
        assert (tmp_path / evil["path"]).resolve().parent == (tmp_path / "images").resolve()
        assert all(SAFE_NAME.match(n) for n in image_files(tmp_path))
        assert not list((tmp_path / "images").glob(".*"))
        # every eligible, healthy asset arrived exactly once
        healthy = {a for a, w in expected.items() if w == "ok" and a not in failing}
        sent = site.images_sent()
        assert {a for a in sent} == healthy and set(sent.values()) == {1}
        # Retry-After honoured, rate never above the limit, the project's UA on every request
        channel_hits = [r.t for r in site.requests if r.path.endswith("channels.json")]
        assert channel_hits[1] - channel_hits[0] >= 1.0
        assert_rate(site, DELAY)
        # a rerun retries only the failures
        before = len(site.requests)
        scrape(site, tmp_path)
        again = {r.path for r in site.requests[before:] if r.path.startswith("/p/")}
        assert again and all(any(f"/{a}/" in p for a in failing) for p in again)
        assert site.images_sent() == sent


def test_repeated_challenges_stop_the_run_then_resume(site, tmp_path):
    for hash_id in site.cat.projects:
        site.sticky[f"/projects/{hash_id}.json"] = "challenge"
    rc, logs = scrape(site, tmp_path, challenge_limit=3)
    assert rc == 3
    assert any("challenge" in line and "does not evade" in line for line in logs)
    assert sum(r.answer == "challenge" for r in site.requests) == 3
    assert site.requests[-1].answer == "challenge"  # nothing after the third challenge
    site.sticky.clear()
    rc, _ = scrape(site, tmp_path)
    assert rc == 0
    assert all(r["status"] in ("ok", "skipped") for r in manifest_by_asset(tmp_path).values())


# -- the command line ---------------------------------------------------------------------------
def cli(out, base_url, *extra):
    return [sys.executable, "-m", "workflow.dataset.scrape", "--base-url", base_url, "--out",
            str(out), "--delay", "0.002", "--per-page", "5", "--timeout", "2", "--no-progress", *extra]


def test_cli_help():
    proc = subprocess.run([sys.executable, "-m", "workflow.dataset.scrape", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--base-url" in proc.stdout and "--max-projects" in proc.stdout


def test_killed_scrape_resumes_to_the_same_result(tmp_path):
    """SIGKILL at random points, rerun: same manifest and files, no recorded asset fetched twice."""
    cat = build_catalogue(n_projects=24, assets_per_project=3)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    with FakeArtstation(cat) as site:
        full = tmp_path / "full"
        subprocess.run(cli(full, site.base_url), cwd=ROOT, check=True, timeout=60,
                       capture_output=True)
        n_requests = len(site.requests)
        site.requests.clear()

        out = tmp_path / "killed"
        # each run is killed after a random number of its own requests (listing included)
        kills = [rng.randrange(3, n_requests // 3) for _ in range(3)]
        checkpoints = []  # (request index at the kill, assets recorded ok by then)
        for k in kills:
            start = len(site.requests)
            proc = subprocess.Popen(cli(out, site.base_url), cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while len(site.requests) - start < k and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.0005)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait() == -signal.SIGKILL, "the run ended before the kill point"
            ok = {r["asset_id"] for r in read_records(out / "manifest.jsonl") if r["status"] == "ok"}
            checkpoints.append((len(site.requests), ok))
        final = subprocess.run(cli(out, site.base_url), cwd=ROOT, timeout=60, capture_output=True,
                               text=True)
        assert final.returncode == 0, final.stderr
        for mark, ok in checkpoints:  # what was recorded before a kill is never fetched again
            assert not {r.image for r in site.requests[mark:] if r.image} & ok, f"seed {seed}"
        # at most one asset was in flight at each kill
        sent = site.images_sent()
        assert sum(n - 1 for n in sent.values()) <= len(kills), f"seed {seed}"

    assert (out / "manifest.jsonl").read_text() == (full / "manifest.jsonl").read_text(), f"seed {seed}"
    assert image_files(out) == image_files(full), f"seed {seed}"
