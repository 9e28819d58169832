"""The evaluation sample sets on disk: a folder of uncompressed .npy files plus manifest.json,
written chunk by chunk and read row range by row range, so neither generation nor any metric
holds a whole set in memory (at paper scale one set is 50,000 x 256² x 3 bytes = 9.8 GB).

    samples/
      manifest.json    {"format", "scalars": {indicator, ...}, "sets": {name: {shape, dtype, done}},
                        "settings": what produced it (the resume check), "complete"}
      natural.npy ...  one standard .npy per set: np.load(path, mmap_mode="r") reads it too

Rows are read with seek + read, not through a memory map: pages of a map stay in the process's
resident set until the map is dropped, so a pass over a mapped 9.8 GB file would show 9.8 GB RSS.
A legacy single-file ``samples.npz`` (written before this format) is still readable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from numpy.lib.format import open_memmap, read_array_header_1_0, read_array_header_2_0, read_magic

from basics.files import write_json_atomic

FORMAT = 1
READ_BATCH = 32  # rows per read; also the Inception / encoder batch, as before the format change


class Rows:
    """Row ranges of one array, fetched on demand. ``largest_read`` records the most rows one
    access fetched, so a test can show that no consumer reads a whole set."""

    def __init__(self, shape, dtype, read: Callable[[int, int], np.ndarray], batch: int = READ_BATCH):
        self.shape, self.dtype, self._read, self.batch = tuple(shape), np.dtype(dtype), read, batch
        self.largest_read = 0

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self[index:index + 1][0] if index >= 0 else self[len(self) + index]
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise IndexError("Rows supports contiguous slices only")
        stop = max(start, stop)
        self.largest_read = max(self.largest_read, stop - start)
        return self._read(start, stop)

    def batches(self):
        for start in range(0, len(self), self.batch):
            yield self[start:start + self.batch]


def npy_layout(path) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, byte offset of the data) from a .npy header."""
    with open(path, "rb") as f:
        version = read_magic(f)
        shape, fortran, dtype = (read_array_header_1_0 if version == (1, 0) else read_array_header_2_0)(f)
        if fortran:
            raise ValueError(f"{path}: Fortran-ordered arrays are not row-readable")
        return shape, dtype, f.tell()


def npy_rows(path, batch: int = READ_BATCH) -> Rows:
    shape, dtype, offset = npy_layout(path)
    row_items = int(np.prod(shape[1:], dtype=np.int64))

    def read(start, stop):
        with open(path, "rb") as f:
            f.seek(offset + start * row_items * dtype.itemsize)
            data = np.fromfile(f, dtype=dtype, count=(stop - start) * row_items)
        return data.reshape((stop - start, *shape[1:]))
    return Rows(shape, dtype, read, batch)


def array_rows(array: np.ndarray, batch: int = READ_BATCH) -> Rows:
    return Rows(array.shape, array.dtype, lambda start, stop: np.array(array[start:stop]), batch)


class SampleSets:
    """Read side: ``sets["natural"]`` is a Rows, ``sets.scalars["indicator"]`` a number; every
    consumer iterates ``rows.batches()`` (``batch`` rows at a time)."""

    def __init__(self, path, batch: int = READ_BATCH):
        self.path = Path(path)
        if self.path.is_dir():
            manifest = json.loads((self.path / "manifest.json").read_text())
            if not manifest.get("complete"):
                raise ValueError(f"{self.path}: sample sets not complete (generation interrupted?)")
            self.scalars = manifest["scalars"]
            self._open = lambda name: npy_rows(self.path / f"{name}.npy", batch)
            self.names = list(manifest["sets"])
        else:  # legacy samples.npz: small demo files, arrays loaded when asked for
            npz = np.load(self.path)
            self.names = [k for k in npz.files if npz[k].ndim > 0]
            self.scalars = {k: npz[k].item() for k in npz.files if k not in self.names}
            self._open = lambda name: array_rows(npz[name], batch)
        self._rows: dict[str, Rows] = {}

    def __contains__(self, name):
        return name in self.names

    def __getitem__(self, name) -> Rows:
        if name not in self.names:
            raise KeyError(f"{self.path}: no sample set {name!r}")
        if name not in self._rows:
            self._rows[name] = self._open(name)
        return self._rows[name]

    @property
    def largest_read(self) -> int:
        return max((r.largest_read for r in self._rows.values()), default=0)


def open_sets(samples) -> SampleSets:
    """A path or an already opened SampleSets (tests pass one in to inspect its reads)."""
    return samples if isinstance(samples, SampleSets) else SampleSets(samples)


class SampleWriter:
    """Write side. Everything goes to ``<out>.partial/`` and is renamed to ``<out>`` at the end.
    Each finished chunk is recorded in the manifest, so a rerun with the same settings (same
    checkpoints, counts and seed: generation is deterministic) continues where it stopped."""

    def __init__(self, out, settings: dict):
        self.out = Path(out)
        self.tmp = self.out.with_name(self.out.name + ".partial")
        old = self._manifest_of(self.tmp)
        if old and old.get("format") == FORMAT and old.get("settings") == settings:
            self.manifest = old
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp.mkdir(parents=True)
            self.manifest = {"format": FORMAT, "scalars": {}, "sets": {}, "settings": settings,
                             "complete": False}
            self._save()

    @staticmethod
    def _manifest_of(folder: Path):
        try:
            return json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            return None

    def _save(self):
        write_json_atomic(self.tmp / "manifest.json", self.manifest)

    def resumed_rows(self) -> dict:
        return {k: v["done"] for k, v in self.manifest["sets"].items() if v["done"]}

    def set_scalars(self, **values):
        self.manifest["scalars"].update(values)
        self._save()

    def _prepare(self, name, shape, dtype) -> int:
        """Create the set's file (header + sparse full size) unless a matching one exists;
        the number of rows already written."""
        info, path = self.manifest["sets"].get(name), self.tmp / f"{name}.npy"
        if info and info["shape"] == list(shape) and info["dtype"] == np.dtype(dtype).str and path.is_file():
            return info["done"]
        open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))  # map dropped at once
        self.manifest["sets"][name] = {"shape": list(shape), "dtype": np.dtype(dtype).str, "done": 0}
        self._save()
        return 0

    def fill(self, shapes: dict, make: Callable[[int, int], dict], chunk: int = READ_BATCH,
             dtype=np.uint8):
        """Write sets of equal length together: ``make(start, stop)`` returns {name: rows}."""
        length = {s[0] for s in shapes.values()}.pop()
        done = min(self._prepare(name, shape, dtype) for name, shape in shapes.items())
        layouts = {name: npy_layout(self.tmp / f"{name}.npy") for name in shapes}
        for start in range(done, length, chunk):
            stop = min(start + chunk, length)
            rows = make(start, stop)
            for name, (shape, dt, offset) in layouts.items():
                block = np.ascontiguousarray(rows[name], dtype=dt)
                assert block.shape == (stop - start, *shape[1:]), (name, block.shape)
                with open(self.tmp / f"{name}.npy", "r+b") as f:
                    f.seek(offset + start * block[0].nbytes)
                    f.write(block.tobytes())
            for name in shapes:  # data first, then the record that it is there
                self.manifest["sets"][name]["done"] = stop
            self._save()

    def put(self, name, array: np.ndarray):
        """A small array written at once (e.g. the reference indices)."""
        self.fill({name: array.shape}, lambda start, stop: {name: array[start:stop]},
                  chunk=max(1, len(array)), dtype=array.dtype)

    def finish(self) -> Path:
        self.manifest["complete"] = True
        self._save()
        if self.out.exists():
            shutil.rmtree(self.out) if self.out.is_dir() else self.out.unlink()
        os.replace(self.tmp, self.out)
        return self.out
