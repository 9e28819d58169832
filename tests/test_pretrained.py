"""The pretrained-file registry against a loopback HTTP server: resume, checksums, offline
messages, files the user already has, redirect policy, the CLI and the real registry's shape."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import re
import socket
import threading
from pathlib import Path

import pytest
import yaml

from basics.files import sha256_file
from workflow import pretrained as pt

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, more than one download chunk
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    log = []  # (path, Range header, bytes sent), appended before replying: a test reads it
              # as soon as the client has the reply (appended after, it raced under load)
    quota_pages_left = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        port = self.server.server_address[1]
        rng = self.headers.get("Range")
        if self.path == "/redirect-same":
            return self._redirect(f"http://127.0.0.1:{port}/file.bin")
        if self.path == "/redirect-other":
            return self._redirect(f"http://localhost:{port}/file.bin")
        if self.path == "/quota-once":  # a file host's quota page first, the real file after
            Handler.quota_pages_left -= 1
            if Handler.quota_pages_left >= 0:
                return self._send(200, b"<!DOCTYPE html><html>Quota exceeded</html>", rng,
                                  "text/html")
            self.path = "/file.bin"
        if self.path == "/html":
            body = b"<!DOCTYPE html><html>Quota exceeded</html>"
            return self._send(200, body, rng, "text/html")
        if self.path == "/missing":
            return self._send(404, b"not found", rng)
        if self.path in ("/file.bin", "/norange.bin"):
            if rng and self.path == "/file.bin":
                start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                if start >= len(PAYLOAD):
                    Handler.log.append((self.path, rng, 0))
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                body = PAYLOAD[start:]
                Handler.log.append((self.path, rng, len(body)))
                self.send_response(206)
                end = len(PAYLOAD) - 1
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(PAYLOAD)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                return self.wfile.write(body)
            return self._send(200, PAYLOAD, rng)
        self._send(404, b"?", rng)

    def _redirect(self, location):
        Handler.log.append((self.path, None, 0))
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status, body, rng, ctype="application/octet-stream"):
        Handler.log.append((self.path, rng, len(body)))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def clear_log():
    Handler.log.clear()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def entry(url, sha256=SHA, **kw):
    return pt.Entry(name="weights", filename="weights.pth", url=url, sha256=sha256, **kw)


def quiet(*a, **k):
    pass


def test_download_verifies_and_links(server, tmp_path):
    path = pt.fetch(entry(f"{server}/file.bin", size=len(PAYLOAD)), tmp_path, retries=0, log=quiet)
    assert path == tmp_path / "weights.pth" and path.read_bytes() == PAYLOAD
    assert (tmp_path / pt.STORE / "weights.pth").is_file()
    assert not list(tmp_path.rglob("*.part"))
    # A second fetch touches no network (the server would be hit otherwise).
    Handler.log.clear()
    pt.fetch(entry(f"{server}/file.bin"), tmp_path, retries=0, log=quiet)
    assert Handler.log == []


def test_partial_download_resumes_with_range(server, tmp_path):
    done = 300_000
    part = tmp_path / pt.STORE / "weights.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:done])
    pt.fetch(entry(f"{server}/file.bin"), tmp_path, retries=0, log=quiet)
    assert (tmp_path / "weights.pth").read_bytes() == PAYLOAD
    assert Handler.log == [("/file.bin", f"bytes={done}-", len(PAYLOAD) - done)]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    part = tmp_path / pt.STORE / "weights.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that must not stay in front")
    pt.fetch(entry(f"{server}/norange.bin"), tmp_path, retries=0, log=quiet)
    assert (tmp_path / "weights.pth").read_bytes() == PAYLOAD


def test_complete_part_is_not_downloaded_again(server, tmp_path):
    part = tmp_path / pt.STORE / "weights.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD)
    pt.fetch(entry(f"{server}/file.bin"), tmp_path, retries=0, log=quiet)
    assert Handler.log[0][2] == 0  # 416: nothing more to send
    assert (tmp_path / "weights.pth").read_bytes() == PAYLOAD


def test_checksum_mismatch_names_file_expected_and_got(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(pt.ChecksumError) as err:
        pt.fetch(entry(f"{server}/file.bin", sha256=wrong), tmp_path, retries=0, log=quiet)
    msg = str(err.value)
    assert "weights" in msg and f"expected sha256 {wrong}" in msg and f"got {SHA}" in msg
    assert not (tmp_path / "weights.pth").exists()
    assert (tmp_path / pt.STORE / "weights.pth.part.bad").exists()  # kept for inspection


def test_hash_prefix_is_checked(server, tmp_path):
    pt.fetch(entry(f"{server}/file.bin", sha256=None, sha256_prefix=SHA[:8]), tmp_path,
             retries=0, log=quiet)
    bad = entry(f"{server}/file.bin", sha256=None, sha256_prefix="deadbeef")
    with pytest.raises(pt.ChecksumError, match="starting deadbeef"):
        pt.verify_file(bad, tmp_path / "weights.pth")


def test_offline_message_names_url_and_how_to_place_the_file(tmp_path):
    url = "https://example.invalid/weights.pth"
    with pytest.raises(pt.OfflineError) as err:
        pt.fetch(entry(url), tmp_path, offline=True, log=quiet)
    msg = str(err.value)
    assert url in msg and str(tmp_path / "weights.pth") in msg and "--link-from" in msg
    assert SHA in msg


def test_unreachable_host_fails_with_a_clear_message(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/weights.pth"
    with pytest.raises(pt.OfflineError) as err:
        pt.fetch(entry(url), tmp_path, retries=0, timeout=5, log=quiet)
    assert f"could not reach {url}" in str(err.value) and "place it at" in str(err.value)


def test_link_from_a_user_folder_and_named_file(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "weights.pth").write_bytes(PAYLOAD)
    url = f"http://127.0.0.1:{closed_port()}/never"
    out = pt.fetch(entry(url), tmp_path / "a", link_from=[mine], retries=0, log=quiet)
    assert out.read_bytes() == PAYLOAD
    other = tmp_path / "elsewhere.bin"
    other.write_bytes(PAYLOAD)
    out = pt.fetch(entry(url), tmp_path / "b", files={"weights": str(other)}, log=quiet)
    assert out.read_bytes() == PAYLOAD
    (mine / "weights.pth").write_bytes(PAYLOAD[:-1] + b"X")  # a wrong file of the user's
    with pytest.raises(pt.ChecksumError, match="checksum mismatch for weights"):
        pt.fetch(entry(url), tmp_path / "c", link_from=[mine], log=quiet)


def test_redirect_policy(server, tmp_path):
    pt.fetch(entry(f"{server}/redirect-same"), tmp_path / "same", retries=0, log=quiet)
    with pytest.raises(pt.PretrainedError, match="refusing cross-host redirect .* localhost"):
        pt.fetch(entry(f"{server}/redirect-other"), tmp_path / "other", retries=0, log=quiet)
    out = pt.fetch(entry(f"{server}/redirect-other"), tmp_path / "other", retries=0,
                   allow_hosts=["localhost"], log=quiet)
    assert out.read_bytes() == PAYLOAD


def test_html_page_instead_of_weights_is_an_error(server, tmp_path):
    with pytest.raises(pt.PretrainedError, match="HTML page"):
        pt.fetch(entry(f"{server}/html", sha256=None), tmp_path, retries=0, log=quiet)


def test_a_quota_page_does_not_poison_the_next_fetch(server, tmp_path):
    """The HTML page is refused before it is written, so the next fetch starts clean
    (a .part holding it would be resumed from forever, with Range requests)."""
    Handler.quota_pages_left = 1
    with pytest.raises(pt.PretrainedError, match="HTML page"):
        pt.fetch(entry(f"{server}/quota-once"), tmp_path, retries=0, log=quiet)
    assert not list((tmp_path / pt.STORE).glob("*.part"))
    path = pt.fetch(entry(f"{server}/quota-once"), tmp_path, retries=0, log=quiet)
    assert path.read_bytes() == PAYLOAD


def test_a_part_longer_than_the_file_is_discarded(server, tmp_path):
    part = tmp_path / pt.STORE / "weights.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD + b"junk from another file")
    path = pt.fetch(entry(f"{server}/file.bin", size=len(PAYLOAD)), tmp_path, retries=0, log=quiet)
    assert path.read_bytes() == PAYLOAD


def test_a_failed_check_moves_the_body_aside(server, tmp_path):
    """Wrong size: the body goes to .part.bad, and the next fetch downloads afresh."""
    with pytest.raises(pt.ChecksumError, match="size mismatch"):
        pt.fetch(entry(f"{server}/file.bin", size=len(PAYLOAD) + 1), tmp_path, retries=0, log=quiet)
    assert not (tmp_path / pt.STORE / "weights.pth.part").exists()
    assert (tmp_path / pt.STORE / "weights.pth.part.bad").exists()
    Handler.log.clear()
    pt.fetch(entry(f"{server}/file.bin", size=len(PAYLOAD)), tmp_path, retries=0, log=quiet)
    assert Handler.log == [("/file.bin", None, len(PAYLOAD))]  # no Range: a fresh start


def test_trust_on_first_use_pins_the_hash(server, tmp_path):
    e = entry(f"{server}/file.bin", sha256=None)
    path = pt.fetch(e, tmp_path, retries=0, log=quiet)
    assert (tmp_path / "weights.pth.sha256").read_text().split()[0] == SHA
    with pytest.raises(pt.ChecksumError, match="--strict"):
        pt.verify_file(e, path, strict=True)
    path.unlink()
    path.write_bytes(b"tampered")
    with pytest.raises(pt.ChecksumError, match="pinned on first use"):
        pt.verify_file(e, path)


def test_store_survives_deleted_output(server, tmp_path):
    """Snakemake deletes a job's output before rerunning it; the store copy brings it back."""
    pt.fetch(entry(f"{server}/file.bin"), tmp_path, retries=0, log=quiet)
    (tmp_path / "weights.pth").unlink()
    Handler.log.clear()
    pt.fetch(entry(f"{server}/file.bin"), tmp_path, offline=True, log=quiet)
    assert (tmp_path / "weights.pth").read_bytes() == PAYLOAD and Handler.log == []


def test_cli_fetch_verify_list_and_errors(server, tmp_path, capsys):
    reg = tmp_path / "reg.yaml"
    reg.write_text(yaml.safe_dump({"files": [
        {"name": "good", "filename": "good.bin", "url": f"{server}/file.bin", "sha256": SHA,
         "licence": "test"},
        {"name": "gone", "filename": "gone.bin", "url": f"{server}/missing", "sha256": SHA}]}))
    d = tmp_path / "pre"

    def cli(*args):
        return pt.main(["--registry", str(reg), *args, "--dir", str(d)])

    assert cli("fetch", "good", "--retries", "0") == 0
    assert cli("verify", "good") == 0
    assert cli("list") == 0
    capsys.readouterr()
    assert cli("fetch", "gone", "--offline") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: gone: offline")
    assert f"{server}/missing" in err[0]
    assert cli("fetch", "gone", "--retries", "0") == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert cli("fetch", "nope") == 1
    assert "unknown pretrained file 'nope'" in capsys.readouterr().err
    (d / "good.bin").write_bytes(b"corrupt")  # a hard link: the store copy is corrupt too
    assert cli("verify", "good") == 1
    assert "checksum mismatch for good" in capsys.readouterr().err


def test_real_registry_is_well_formed():
    reg = pt.load_registry()
    assert {"stylegan2_ffhq", "vgg19", "fid_inception", "ir_se50", "lpips_alex",
            "alexnet"} <= set(reg)
    for e in reg.values():
        assert (e.url or "").startswith("https://") or e.bundled, e.name
        assert e.licence and e.used_by and e.sha256_source
        if e.sha256:
            assert re.fullmatch(r"[0-9a-f]{64}", e.sha256)
            if e.sha256_prefix:
                assert e.sha256.startswith(e.sha256_prefix)
        # torchvision / torch.hub file names embed the SHA-256 prefix; it must agree.
        m = re.search(r"-([0-9a-f]{8,})\.pth$", e.filename)
        if m:
            assert e.sha256_prefix == m.group(1), e.name
    assert len({e.filename for e in reg.values()}) == len(reg)


def test_bundled_file_is_shipped_verified_and_linked(tmp_path):
    """A registry entry with `bundled` is served from the project's own copy, checked against
    its SHA-256; a copy that does not match is refused."""
    reg = pt.load_registry()
    shipped = [e for e in reg.values() if e.bundled]
    assert shipped, "the demo's natural StyleGAN2 ships with the project"
    for e in shipped:
        assert Path(e.bundled).is_file() and e.recipe
        assert sha256_file(Path(e.bundled)) == e.sha256
        out = pt.fetch(e, tmp_path, offline=True, log=quiet)
        assert out == tmp_path / e.filename and sha256_file(out) == e.sha256
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not the file")
    e = dataclasses.replace(shipped[0], bundled=str(bad))
    with pytest.raises(pt.ChecksumError):
        pt.fetch(e, tmp_path / "other", offline=True, log=quiet)
