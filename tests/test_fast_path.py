"""The speed-up options of the training loop (docs/performance.md): bf16 autocast +
channels_last stay within the stated tolerances of fp32 on fixed seeds (a few steps here;
scripts/check_numerics.py runs a few hundred), defaults keep the fp32 path, bad values fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import check_numerics  # noqa: E402

from models.train.config import LoopConfig  # noqa: E402
from models.train.placement import channels_last_, module_channels_last_  # noqa: E402
from models.train.step import StepRunner  # noqa: E402


def test_defaults_are_the_fp32_eager_path():
    cfg = LoopConfig()
    assert (cfg.precision, cfg.channels_last, cfg.compile) == ("fp32", False, False)


def test_bf16_channels_last_matches_fp32_within_tolerances(tmp_path):
    metrics, bad = check_numerics.check(steps=2, resolution=16, batch=4, precision="bf16",
                                        channels_last=True, root=tmp_path)
    assert not bad, bad
    assert metrics["finite"]
    # the fast path really ran in reduced precision: step-0 losses differ, but only slightly
    assert any(v["abs"] > 0 for v in metrics["step0_loss"].values())


def test_channels_last_helpers_keep_values_and_parameters():
    conv = torch.nn.Conv2d(3, 4, 3)
    w = conv.weight
    before = w.detach().clone()
    module_channels_last_(conv)
    assert conv.weight is w and w.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(w.detach(), before)
    x = {"a": torch.randn(2, 3, 4, 4), "b": [torch.randn(2, 1, 4, 4)], "c": 3}
    y = channels_last_(x)
    assert y["a"].is_contiguous(memory_format=torch.channels_last) and y["c"] == 3
    assert torch.equal(y["a"], x["a"])


def test_unknown_precision_is_an_error(tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    import bench_throughput as bench
    t = bench.build_blendgan(tmp_path, 16, 2, width="narrow")
    t.loop = LoopConfig(precision="fp8")
    with pytest.raises(ValueError, match="loop.precision"):
        StepRunner(t)
