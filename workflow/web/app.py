"""The Flask app: one page, one JSON endpoint that stylises, and the style set's thumbnails.

POST /api/stylise (multipart form):
    face        photo | random            photo: the file field ``photo``; random: ``face_seed``
    style       upload | set | latent     upload: the file ``style_image``; set: ``style_index``;
                                          latent: ``style_seed``
    indicator   0..18 (18 = natural face) truncation  0..1
    sweep       1 to add the indicator sweep i = 0..18
Answers ``{"image": data-URL PNG, "size": [w, h], "sweep": ..., "crop": ...}`` or, for anything
the user can fix, ``{"error": message}`` with status 400 (413 for an upload over the cap).
"""

from __future__ import annotations

import base64
import io
from importlib.resources import files

from flask import Flask, jsonify, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .stylist import InputError, Stylist, one_line

PAGE = "page.html"


def data_url(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def number(form, key, cast, default):
    raw = form.get(key, "")
    if raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        raise InputError(f"{key} must be a number, not {raw[:40]!r}") from None


def upload(key: str) -> bytes:
    f = request.files.get(key)
    return f.read() if f else b""  # in memory only; werkzeug's spool file is anonymous


def create_app(stylist: Stylist, max_upload_mb: float = 10) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    page = files("workflow.web").joinpath(PAGE).read_text()

    @app.get("/")
    def index():
        return page

    @app.get("/api/status")
    def status():
        return jsonify(stylist.status())

    @app.get("/api/styles/<int:index>.png")
    def style_thumbnail(index):
        buf = io.BytesIO()
        stylist.style_image(index).save(buf, format="PNG")
        buf.seek(0)
        return send_file(buf, mimetype="image/png")

    @app.post("/api/stylise")
    def stylise():
        form = request.form
        if form.get("face", "random") == "photo":
            face = stylist.photo_face(upload("photo"))
        else:
            face = stylist.random_face(number(form, "face_seed", int, 0))
        mode = form.get("style", "latent")
        if mode == "upload":
            z_style = stylist.reference_style(upload("style_image"))
        elif mode == "set":
            z_style = stylist.set_style(number(form, "style_index", int, 0))
        elif mode == "latent":
            z_style = stylist.latent_style(number(form, "style_seed", int, 0))
        else:
            raise InputError(f"unknown style source {mode[:40]!r} (upload, set or latent)")
        indicator = number(form, "indicator", int, 6)
        truncation = number(form, "truncation", float, 0.75)
        image = stylist.render(face, z_style, indicator, truncation)
        out = {"image": data_url(image), "size": list(image.size)}
        if form.get("sweep") == "1":
            out["sweep"] = data_url(stylist.sweep(face, z_style, truncation))
        if face.crop is not None:
            out["crop"] = data_url(face.crop)
        return jsonify(out)

    @app.errorhandler(InputError)
    def user_error(err):
        return jsonify(error=str(err)), 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_):
        return jsonify(error=f"the upload is larger than the server's cap of {max_upload_mb:g} MB"), 413

    @app.errorhandler(Exception)
    def failure(err):  # the server stays up and says what went wrong
        if isinstance(err, HTTPException):  # 404, 405, ...: as they are
            return jsonify(error=err.description), err.code
        app.logger.exception("stylisation failed")
        return jsonify(error=f"stylisation failed: {one_line(err)}"), 500

    return app
