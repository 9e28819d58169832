"""Landmark backends and the landmark file (method 2.1, 2.2)."""
import json

import numpy as np
import pytest
from PIL import Image

from workflow.dataset.landmarks import (
    DlibDetector, build_landmark_file, fan_weights_present, load_landmark_file, read_landmark_file,
    to_points,
)


@pytest.fixture(scope="module")
def astronaut_dir(tmp_path_factory):
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.new("RGB", (200, 150), (90, 140, 200)).save(folder / "sky.png")  # no face
    return folder


def check_astronaut_entry(entry):
    el, er, ml, mr = to_points(entry)
    # Eileen Collins' face sits around x 175..265, y 75..170 in the 512x512 photo.
    for p in (el, er, ml, mr):
        assert 160 < p[0] < 280 and 70 < p[1] < 180
    assert el[0] < er[0] and ml[0] < mr[0]          # eye_left is the eye on the image's left
    assert max(el[1], er[1]) < min(ml[1], mr[1])     # eyes above the mouth
    assert 30 < np.linalg.norm(er - el) < 70


def test_dlib_on_a_real_photo(astronaut_dir, tmp_path):
    out = tmp_path / "landmarks.json"
    result = build_landmark_file(astronaut_dir, out, backend="dlib")
    assert set(result) == {"astronaut.png"}           # the sky has no face
    entry = result["astronaut.png"]
    check_astronaut_entry(entry)
    assert entry["n_faces"] >= 1 and len(entry["boxes"]) == entry["n_faces"]
    assert load_landmark_file(out) == json.loads(out.read_text())


def test_dlib_detector_returns_none_without_face():
    assert DlibDetector()(np.full((120, 160, 3), 127, np.uint8)) is None


@pytest.mark.skipif(not fan_weights_present(),
                    reason="face-alignment weights (2DFAN4, s3fd) are not in the torch hub cache; "
                           "they download at first use, which this machine cannot do")
def test_face_alignment_on_a_real_photo(astronaut_dir, tmp_path):
    result = build_landmark_file(astronaut_dir, tmp_path / "l.json", backend="face-alignment")
    check_astronaut_entry(result["astronaut.png"])


def test_file_backend_keeps_listed_images(astronaut_dir, tmp_path):
    given = tmp_path / "given.json"
    lm = {"eye_left": [1, 2], "eye_right": [3, 2], "mouth_left": [1, 5], "mouth_right": [3, 5]}
    given.write_text(json.dumps({"astronaut.png": {"landmarks": lm, "raw_name": "x"}, "gone.png": {"landmarks": lm}}))
    result = build_landmark_file(astronaut_dir, tmp_path / "out.json", backend="file", source_file=given)
    assert list(result) == ["astronaut.png"] and result["astronaut.png"]["raw_name"] == "x"


def test_bad_landmark_entries_are_named_and_the_rest_kept(tmp_path):
    lm = {"eye_left": [1, 2], "eye_right": [3, 2], "mouth_left": [1, 5], "mouth_right": [3, 5]}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a.png": {"landmarks": {"eye_left": [1, 2]}}, "b.png": {"landmarks": lm},
                               "c.png": {**lm, "n_faces": "two"}}))
    entries, problems = read_landmark_file(bad)
    assert set(entries) == {"b.png", "c.png"} and "mouth_right" in problems["a.png"]
    assert entries["c.png"]["landmarks"] == lm and "n_faces" not in entries["c.png"]  # wrapped
    assert load_landmark_file(bad) == entries
    (tmp_path / "notjson.json").write_text("{oops")
    with pytest.raises(ValueError, match="notjson.json"):
        load_landmark_file(tmp_path / "notjson.json")
