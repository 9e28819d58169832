"""File names derived from untrusted or user-given names: safe, and never two for one file.

Every stage that names a file after something it was given (an asset id, a raw image's path, a
name in a JSON list) goes through here, so that no name can escape its folder, break a
line-based list, or land on the same file as another name and silently replace it.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def sanitize_name(name: str, max_len: int = 80) -> str:
    """A safe single path component from an untrusted string (ids, raw names, URL parts).

    Keeps [A-Za-z0-9._-], turns everything else (slashes, '..', NUL, control and non-ASCII
    characters) into '_', strips leading dots, and when anything changed appends a short hash
    of the original so that two hostile names cannot collide on the same file.
    """
    original = str(name)
    text = unicodedata.normalize("NFKC", original)
    text = _UNSAFE.sub("_", text).strip("._") or "x"
    if text.split(".")[0].lower() in _RESERVED:
        text = "_" + text
    changed = text != original
    if changed or len(text) > max_len:
        text = f"{text[: max_len - 9]}-{short_hash(original)}"
    return text


def unique_names(names, candidate) -> dict:
    """name -> a file name no other name shares, or None.

    `candidate(name)` proposes a file name (already safe). Names whose candidates clash
    (x.jpg and x.png both proposing x.png; a/b.png and a__b.png both a__b.png) each get the
    hash of their whole name before the extension instead. A clash that survives even that is
    left to the first name in sorted order; the others get None, for the caller to record as a
    rejection rather than overwrite a file.
    """
    names = sorted(set(names))
    proposed = {n: candidate(n) for n in names}
    counts = Counter(proposed.values())
    out, taken = {}, set()
    for n in names:
        name = proposed[n]
        if counts[name] > 1:
            stem, dot, ext = name.rpartition(".")
            name = f"{stem}-{short_hash(n)}.{ext}" if dot else f"{name}-{short_hash(n)}"
        out[n] = None if name in taken else name
        taken.add(name)
    return out
