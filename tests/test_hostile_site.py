"""The scraper against a site that answers with odd or hostile JSON, lies about its listing and
misbehaves on downloads: every case ends with the run finished, the bad item recorded with its
reason, and a rerun that passes the record instead of tripping over it again."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workflow.dataset.artstation_json import is_noai
from workflow.dataset.http_client import PoliteClient
from workflow.dataset.loopback_artstation import FakeArtstation, build_catalogue, make_image_bytes
from workflow.dataset.manifest import read_records
from workflow.dataset.scrape import ArtstationScraper

LISTING = "/api/v2/community/channels/projects.json"
CHANNELS = "/api/v2/community/channels/channels.json"


def run(site, out, max_pixels=5000, **client_kw) -> tuple[int, list[str]]:
    opts = dict(delay=0.005, timeout=0.3, deadline=0.6, max_retries=1, backoff=0.01,
                backoff_cap=0.02, seed=0)
    opts.update(client_kw)
    logs: list[str] = []
    scraper = ArtstationScraper(PoliteClient(**opts), out, base_url=site.base_url, per_page=4,
                                max_pixels=max_pixels, progress=False, log=logs.append)
    return scraper.run(), logs


def records(out) -> dict:
    return {(r["project_id"], r["asset_id"]): r for r in read_records(Path(out) / "manifest.jsonl")}


def small_site():
    return build_catalogue(n_projects=3, assets_per_project=2, special=False)


def first_asset(cat, hash_id="P001x"):
    return cat.projects[hash_id]["assets"][0]


# Each case breaks project P001x (or the listing) in one way: (edit, expected records).
CASES = {
    "assets_is_a_number": (lambda c: c.projects["P001x"].update(assets=7),
                           {("P001x", None): ("skipped", "bad_project:assets is not a list")}),
    "project_is_a_list": (lambda c: c.projects.update(P001x=[1, 2, 3]),
                          {("P001x", None): ("skipped", "bad_project:project is not a JSON object")}),
    "tags_is_a_number": (lambda c: c.projects["P001x"].update(tags=42),
                         {("P001x", "2000"): ("skipped", "bad_tags"),
                          ("P001x", "2001"): ("skipped", "bad_tags")}),
    "image_url_is_a_list": (lambda c: first_asset(c).update(image_url=["/p/a.jpg"]),
                            {("P001x", "2000"): ("skipped", "bad_asset:image_url"),
                             ("P001x", "2001"): ("ok", None)}),
    "image_url_not_web": (lambda c: first_asset(c).update(image_url="file:///etc/passwd"),
                          {("P001x", "2000"): ("skipped", "bad_asset:image_url")}),
    "image_url_bad_port": (lambda c: first_asset(c).update(image_url="http://127.0.0.1:99999/x.jpg"),
                           {("P001x", "2000"): ("skipped", "bad_asset:image_url")}),
    "asset_not_an_object": (lambda c: c.projects["P001x"]["assets"].insert(0, 5),
                            {("P001x", "#0"): ("skipped", "bad_asset:not_an_object"),
                             ("P001x", "2000"): ("ok", None)}),
    "asset_id_an_object": (lambda c: first_asset(c).update(id={"x": 1}),
                           {("P001x", "#0"): ("skipped", "bad_asset:id"),
                            ("P001x", "2001"): ("ok", None)}),
    "text_utf8_cannot_hold": (lambda c: c.projects["P001x"].update(title="broken \ud800 title"),
                              {("P001x", "2000"): ("ok", None)}),
    "user_is_a_list": (lambda c: c.projects["P001x"].update(user=["x"]),
                       {("P001x", "2000"): ("ok", None)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_odd_project_json_is_recorded_and_passed_on_rerun(case, tmp_path):
    edit, expected = CASES[case]
    cat = small_site()
    edit(cat)
    with FakeArtstation(cat) as site:
        rc, logs = run(site, tmp_path)
        assert rc == 0, logs
        recs = records(tmp_path)
        for key, (status, reason) in expected.items():
            assert (recs[key]["status"], recs[key]["reason"]) == (status, reason), recs[key]
        for hash_id in ("P000x", "P002x"):  # the healthy projects are complete
            assert all(r["status"] == "ok" for k, r in recs.items() if k[0] == hash_id)
        if case == "text_utf8_cannot_hold":
            assert recs[("P001x", "2000")]["title"] == "broken \ud800 title"  # escaped, round trip
        before = len(site.requests)
        rc, logs = run(site, tmp_path)
        assert rc == 0, logs
        assert not [r.path for r in site.requests[before:] if r.path.startswith(("/projects", "/p/"))]
        assert records(tmp_path) == recs


def listing_page(ids, total):
    return json.dumps({"data": [{"hash_id": h} for h in ids], "total_count": total}).encode()


@pytest.mark.parametrize("total", [10**6, "lots", None, -3])
def test_a_page_served_for_every_page_number_stops_the_listing(total, tmp_path):
    """The listing page repeats whatever page is asked for (with a lying or odd total_count):
    each sort order stops at the first page that brings nothing new."""
    with FakeArtstation(small_site()) as site:
        site.raw[LISTING] = listing_page(["P000x", "P001x", "P002x"], total)
        rc, logs = run(site, tmp_path)
        assert rc == 0, logs
        listing_hits = [r for r in site.requests if r.path.startswith(LISTING)]
        assert len(listing_hits) <= 2 * 3  # two pages per sort order at most
        assert sum(r["status"] == "ok" for r in records(tmp_path).values()) == 6


def test_odd_channel_and_listing_entries_are_ignored(tmp_path):
    with FakeArtstation(small_site()) as site:
        site.raw[CHANNELS] = json.dumps({"data": [
            5, "Portraits", None, {"id": "abc", "name": "Portraits"}, {"id": 7, "name": ["x"]},
            {"id": 113, "name": "Portraits"}]}).encode()
        site.raw[LISTING] = json.dumps({"data": [
            1, None, {"hash_id": ["P000x"]}, {"hash_id": True}, {"hash_id": "P000x"},
            {"id": "P001x"}, {"hash_id": "x" * 5000}, {"hash_id": "P002x"}],
            "total_count": 8}).encode()
        rc, logs = run(site, tmp_path)
        assert rc == 0, logs
        assert {k[0] for k in records(tmp_path)} == {"P000x", "P001x", "P002x"}


def test_unusable_listing_json_ends_that_sort_order(tmp_path):
    with FakeArtstation(small_site()) as site:
        site.raw[LISTING] = b'{"data": 5, "total_count": 3}'
        rc, logs = run(site, tmp_path)
        assert rc == 0 and any("listing data is not a list" in line for line in logs), logs


# ------------------------------------------------------------------------ the whole hostile site
def hostile_catalogue():
    cat = build_catalogue(n_projects=10, assets_per_project=2)
    img = lambda aid: f"/p/assets/images/{aid}/large/portrait-{aid}.jpg"  # noqa: E731

    def add(hash_id, project):
        cat.projects[hash_id] = project
        cat.listings["trending"].append(hash_id)

    def proj(hash_id, assets, **kw):
        base = {"hash_id": hash_id, "title": f"title {hash_id}", "tags": ["portrait"],
                "adult_content": False, "user": {"username": "u", "full_name": "U"},
                "assets": assets}
        base.update(kw)
        return base

    def image(aid, size=24):
        cat.images[img(aid)] = (make_image_bytes(aid, size), "image/jpeg", str(aid))
        return {"id": aid, "asset_type": "image", "has_image": True, "image_url": img(aid)}

    add("H_assets_number", proj("H_assets_number", 7))
    add("H_project_list", [1, 2])
    add("H_tags_number", proj("H_tags_number", [image(70001)], tags=42))
    add("H_surrogate", proj("H_surrogate", [image(70011)], title="x\ud800y"))
    add("H_mixed", proj("H_mixed", [
        5,                                                  # not an object
        dict(image(70021), id={"x": 1}),                    # id is an object
        dict(image(70022), image_url=[img(70022)]),         # URL is a list
        dict(image(70023), image_url="file:///etc/passwd"),  # not http(s)
        image(70024),                                       # healthy
        image(70024),                                       # the same id again
        image(70025, size=100),                             # 100x100 > max_pixels
        image(70026),                                       # served dripping
        image(70027),                                       # HTML instead of an image
        image(70028),                                       # redirected to another host
    ]))
    expected = {
        ("H_assets_number", None): ("skipped", "bad_project:assets is not a list"),
        ("H_project_list", None): ("skipped", "bad_project:project is not a JSON object"),
        ("H_tags_number", "70001"): ("skipped", "bad_tags"),
        ("H_surrogate", "70011"): ("ok", None),
        ("H_mixed", "#0"): ("skipped", "bad_asset:not_an_object"),
        ("H_mixed", "#1"): ("skipped", "bad_asset:id"),
        ("H_mixed", "70022"): ("skipped", "bad_asset:image_url"),
        ("H_mixed", "70023"): ("skipped", "bad_asset:image_url"),
        ("H_mixed", "70024"): ("ok", None),
        ("H_mixed", "70025"): ("failed", "too_many_pixels:100x100"),
        ("H_mixed", "70026"): ("failed", "timeout"),
        ("H_mixed", "70027"): ("failed", "not_an_image:UnidentifiedImageError"),
        ("H_mixed", "70028"): ("failed", "redirect_refused:localhost"),
    }
    return cat, expected, img


def test_hostile_site_scrape_records_every_bad_item_and_fetches_each_good_one_once(tmp_path):
    cat, expected, img = hostile_catalogue()
    with FakeArtstation(cat) as site:
        site.raw[CHANNELS] = json.dumps({"data": [None, 3, {"id": 113, "name": "Portraits"}]}).encode()
        site.sticky[img(70026)] = "drip"
        site.sticky[img(70027)] = "notimage"
        site.sticky[img(70028)] = f"redirect:http://localhost:{site.port}{img(70028)}"
        rc, logs = run(site, tmp_path)
        assert rc == 0, logs
        recs = records(tmp_path)
        for key, (status, reason) in expected.items():
            got = recs[key]
            matches = got["reason"] is None if reason is None else reason in (got["reason"] or "")
            assert got["status"] == status and matches, (key, got)
        # the ordinary projects: every eligible asset downloaded exactly once
        eligible = {k for k, r in recs.items() if r["status"] == "ok"}
        assert {k for k in eligible if not k[0].startswith("H_")} == {
            (h, str(a["id"])) for h, p in cat.projects.items() if not h.startswith("H_")
            for a in p["assets"]
            if not p["adult_content"] and not is_noai(p["tags"]) and a["asset_type"] == "image"}
        sent = site.images_sent()
        assert all(sent[k[1]] == 1 for k in eligible), sent
        assert sum(1 for k in recs if k == ("H_mixed", "70024")) == 1  # the repeated id: one record
        assert all((tmp_path / r["path"]).is_file() for r in recs.values() if r["status"] == "ok")
        assert not list((tmp_path / "images").glob(".*"))

        # rerun: nothing good is fetched again, bad JSON is not re-read, failures are retried
        before = len(site.requests)
        rc, logs = run(site, tmp_path)
        assert rc == 0, logs
        again = site.requests[before:]
        assert not any(r.path.startswith("/projects/") and "H_mixed" not in r.path for r in again)
        assert {r.image for r in again if r.image} <= {"70025"}  # only the failed, oversized one
        assert {k: (r["status"], r["reason"]) for k, r in records(tmp_path).items()} == \
            {k: (r["status"], r["reason"]) for k, r in recs.items()}
