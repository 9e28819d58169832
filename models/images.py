"""Images as network tensors: (3, R, R) floats in [-1, 1], from files, PIL images or a packed LMDB.

``LMDBImages`` reads like rosinality's MultiResolutionDataset (the keys of
``basics.lmdb_format``), picking the smallest stored size >= the requested resolution and
resizing when they differ. Decoding goes through ``basics.images.load_rgb``, so training,
evaluation and the demo see the pixels the dataset stages saw, under the same pixel cap.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from basics.images import ImageRejected, load_rgb, to_rgb
from basics.lmdb_format import (DEFAULT_INDEX_WIDTH, image_key, read_blob, read_header,
                                 stored_size)


def image_to_uint8(img: Image.Image, resolution: int | None = None) -> torch.Tensor:
    """PIL image -> (3, R, R) uint8."""
    img = to_rgb(img)
    if resolution and img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.LANCZOS)
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float in [-1, 1]; float input is returned as it is."""
    return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x


def image_to_tensor(img: Image.Image, resolution: int | None = None) -> torch.Tensor:
    """PIL image -> (3, R, R) float in [-1, 1]."""
    return to_unit(image_to_uint8(img, resolution))


def load_image(path, resolution: int | None = None) -> torch.Tensor:
    """An image file as (3, R, R) in [-1, 1]; unreadable files raise ValueError naming them."""
    try:
        return image_to_tensor(load_rgb(path), resolution)
    except ImageRejected as e:  # missing, not an image, truncated, over the pixel cap
        raise ValueError(f"{path}: cannot read the image ({e})") from e


class LMDBImages(Dataset):
    """Images of a packed LMDB at ``resolution`` (the smallest stored size that is at least as
    large, resized), as floats in [-1, 1], or as uint8 from ``as_uint8()``."""

    def __init__(self, path, resolution: int, indices=None):
        self.path = str(path)
        self.resolution = resolution
        self.uint8 = False
        length, self.metadata = read_header(self.path)
        self.width = int(self.metadata.get("index_width", DEFAULT_INDEX_WIDTH))
        self.stored = stored_size(self.metadata.get("sizes"), resolution)
        self.all_names = list(self.metadata.get("names") or [str(i) for i in range(length)])
        self.indices = list(range(length)) if indices is None else list(indices)

    @property
    def names(self) -> list[str]:
        return [self.all_names[i] for i in self.indices]

    def as_uint8(self) -> "LMDBImages":
        """The same images as uint8 (training loaders: their workers then skip the float
        conversion and move, pin and copy a quarter of the bytes; ``to_unit`` converts on the
        device, with the same values)."""
        view = copy.copy(self)
        view.uint8 = True
        return view

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        index = self.indices[i]
        blob = read_blob(self.path, self.stored, index, self.width)
        try:
            img = load_rgb(io.BytesIO(blob))
        except ImageRejected as e:  # truncated, not an image, over the pixel cap
            key = image_key(self.stored, index, self.width).decode()
            raise ValueError(f"{self.path}: key {key}: cannot decode the image ({e})") from e
        return (image_to_uint8 if self.uint8 else image_to_tensor)(img, self.resolution)
