"""Resuming a trainer only where it means what it says: snapshots carry images seen and the
settings that define a step; a changed batch, accumulation or network is refused in one line,
a changed learning rate is applied, and --restart starts over with the old snapshots moved aside."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import encoder_cfg, loop, make_lmdb, write_yaml  # noqa: E402

from models.checkpoint import load_checkpoint  # noqa: E402
from models.train import style_encoder as se  # noqa: E402
from models.train.snapshots import latest_valid_snapshot  # noqa: E402


@pytest.fixture(scope="module")
def style_lmdb(tmp_path_factory):
    path, _ = make_lmdb(tmp_path_factory.mktemp("style"), n=24, size=16)
    return path


@pytest.fixture
def cut_run(tmp_path, style_lmdb):
    """A run stopped at 8 images (batch 4: two steps), and the arguments to continue it."""
    cfg = write_yaml(tmp_path / "c.yaml", encoder_cfg(loop=loop(total_images=24, snapshot_every=0)))
    base = ["--config", str(cfg), "--data", str(style_lmdb), "--out", str(tmp_path / "run")]
    assert se.main(base + ["--stop-after-images", "8"]) is None
    return base, tmp_path / "run"


def test_every_snapshot_stores_images_and_step_settings(cut_run):
    _, out = cut_run
    _, payload = latest_valid_snapshot(out / "snapshots")
    extra = payload["extra"]
    assert (extra["images"], extra["step"]) == (8, 2)
    assert extra["settings"]["batch"] == 4 and extra["settings"]["accum"] == 1
    assert extra["settings"]["networks"]["style_encoder"]["kwargs"]["style_dim"] == 16


@pytest.mark.parametrize("change, named", [
    ("loop.batch=8", "loop.batch 4 -> 8"),
    ("loop.accum=2", "loop.accum 1 -> 2"),
    ("style_dim=8", "network style_encoder"),
])
def test_resume_with_other_step_settings_is_refused_in_one_line(cut_run, capsys, change, named):
    base, out = cut_run
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        se.main(base + ["--set", change])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
    assert "snapshot-000000000008.pt" in lines[0] and "--restart" in lines[0]
    assert not (out / "final.pt").exists()


def test_restart_starts_over_and_moves_old_snapshots_aside(cut_run):
    base, out = cut_run
    final = se.main(base + ["--set", "loop.batch=8", "--restart"])
    extra = load_checkpoint(final, build=False)["extra"]
    assert (extra["images"], extra["step"]) == (24, 3)  # 3 steps of 8, from zero
    assert (out / "snapshots.previous" / "snapshot-000000000008.pt").exists()
    _, payload = latest_valid_snapshot(out / "snapshots")
    assert payload["extra"]["settings"]["batch"] == 8
    # and a plain rerun now resumes the new run, not the set-aside one
    assert se.main(base + ["--set", "loop.batch=8"]) is not None


def test_resume_applies_a_changed_learning_rate_and_keeps_the_moments(cut_run, capsys,
                                                                       monkeypatch):
    """load_state_dict alone would bring the snapshot's lr back; the config's value wins."""
    from models.train import cli
    base, _ = cut_run
    seen = {}

    def spy(trainer, *args, **kw):
        result = real_run(trainer, *args, **kw)
        seen["lr"] = [g["lr"] for o in trainer.optimizers.values() for g in o.param_groups]
        seen["moments"] = all(o.state for o in trainer.optimizers.values())
        return result

    real_run = cli.run
    monkeypatch.setattr(cli, "run", spy)
    capsys.readouterr()
    se.main(base + ["--set", "lr=0.0005"])
    log = capsys.readouterr()
    assert seen["lr"] == [0.0005] and seen["moments"], seen
    text = log.out + log.err
    assert "resumed from" in text and "lr 0.002 -> 0.0005" in text, text
