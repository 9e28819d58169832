"""What a run reports as it trains: the stats log and the sample grids."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from PIL import Image

from basics.files import atomic_output


class StatsLog:
    """stats.jsonl (always) and TensorBoard scalars (when the tensorboard package exists)."""

    def __init__(self, folder, resume_images: int, tensorboard: bool, enabled: bool):
        self.enabled = enabled
        self.path = Path(folder) / "stats.jsonl"
        self.tb = None
        if not enabled:
            return
        if self.path.exists():  # drop lines a resumed run is about to redo
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("images", 0) <= resume_images]
            self.path.write_text("".join(ln + "\n" for ln in keep))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(Path(folder) / "tensorboard"))
            except Exception as err:  # the tensorboard package is optional
                print(f"note: TensorBoard scalars off ({err.__class__.__name__}: {err}); "
                      f"stats.jsonl is written regardless", flush=True)

    def write(self, record: dict):
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("images", "step"):
                    self.tb.add_scalar(k, v, record["images"])
            self.tb.flush()

    def close(self):
        if self.tb is not None:
            self.tb.close()


def read_stats(path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def save_image_grid(images: torch.Tensor, path, nrow: int):
    """(N, 3, H, W) in [-1, 1] -> one PNG, ``nrow`` images per row (no torchvision)."""
    images = images.detach().float().cpu().clamp(-1, 1)
    n, c, h, w = images.shape
    rows = math.ceil(n / nrow)
    grid = torch.ones(c, rows * (h + 2) + 2, nrow * (w + 2) + 2)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, 2 + r * (h + 2):2 + r * (h + 2) + h, 2 + col * (w + 2):2 + col * (w + 2) + w] = images[i]
    arr = ((grid + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    with atomic_output(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")  # the temporary name has no .png suffix
