"""pSp trained as its authors train it: the Ranger optimiser, random noise in the loss, the
checkpoint's latent average; the project's former recipe (Adam (0, 0.99), constant noise) as
options."""

from __future__ import annotations

import copy
import io
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from eval_helpers import tiny_models  # noqa: E402
from train_helpers import loop, make_lmdb, psp_cfg, write_yaml  # noqa: E402

from models.checkpoint import load_checkpoint, load_psp_encoder, save_checkpoint  # noqa: E402
from models.train import psp as psp_train  # noqa: E402
from models.train.config import from_dict  # noqa: E402
from models.train.distributed import Dist  # noqa: E402
from models.train.ranger import Ranger  # noqa: E402

CPU = Dist()


# ------------------------------------------------------------------------------ Ranger
def _problem(seed=0, dtype=torch.float32):
    """A small least-squares problem with a conv-shaped, a matrix and a bias parameter."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(4, 3, 2, 2, generator=g), torch.randn(5, 12, generator=g),
              torch.randn(5, generator=g)]
    params = [p.to(dtype).requires_grad_(True) for p in params]
    x = torch.randn(32, 3, 2, 2, generator=g).to(dtype)
    target = torch.randn(32, 5, generator=g).to(dtype)

    def loss_fn():
        h = (x[:, None] * params[0][None]).sum((2, 3, 4)) / 4  # (32, 4)
        h = torch.cat([h, h.tanh(), h.sin()], 1)                # (32, 12)
        return ((h @ params[1].T / 4 + params[2] - target) ** 2).mean()

    return params, loss_fn


def _steps(opt, params, loss_fn, n):
    for _ in range(n):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    return [p.detach().clone() for p in params]


def test_ranger_defaults_are_psp_ones():
    p = torch.zeros(2, requires_grad=True)
    group = Ranger([p]).param_groups[0]
    assert group["betas"] == (0.95, 0.999) and group["eps"] == 1e-5
    assert (group["k"], group["alpha"], group["n_sma_threshold"]) == (6, 0.5, 5.0)
    assert group["use_gc"] and group["gc_min_dim"] == 2 and group["weight_decay"] == 0
    assert psp_train.OPTIMIZER_BETAS == {"ranger": (0.95, 0.999), "adam": (0.9, 0.999)}


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_ranger_without_lookahead_and_gc_is_torch_radam(dtype, tol):
    """alpha = 1 makes every Lookahead sync a copy of the fast weights; use_gc off. Thirty
    steps cross the rectification threshold (rho_t > 5 from step 6 at beta2 = 0.999, the rule
    torch.optim.RAdam also uses), so both the momentum and the rectified branch are compared."""
    a, loss_a = _problem(0, dtype)
    b, loss_b = _problem(0, dtype)
    kw = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-5)
    ours = Ranger(a, alpha=1.0, k=1, use_gc=False, **kw)
    ref = torch.optim.RAdam(b, foreach=False, **kw)
    assert [Ranger.rectification(t, 0.9, 0.999, 5)[0] for t in range(1, 8)] \
        == [False] * 5 + [True] * 2
    first = float(loss_a().detach())
    for _ in range(30):
        pa, pb = _steps(ours, a, loss_a, 1), _steps(ref, b, loss_b, 1)
        for x, y in zip(pa, pb):
            torch.testing.assert_close(x, y, rtol=0, atol=tol)
    assert float(loss_a().detach()) < first


def test_ranger_lookahead_syncs_every_k_steps():
    params, loss_fn = _problem(1)
    start = [p.detach().clone() for p in params]
    opt = Ranger(params, lr=1e-2, k=3, alpha=0.5)
    slow = start
    for step in range(1, 10):
        before = [p.detach().clone() for p in params]
        opt.zero_grad()
        loss_fn().backward()
        # the fast step alone: a copy of the optimiser with Lookahead pushed past this step
        probe = [p.detach().clone().requires_grad_(True) for p in params]
        twin = Ranger(probe, lr=1e-2, k=1000, alpha=0.5)
        twin.load_state_dict(copy.deepcopy(opt.state_dict()))
        for g in twin.param_groups:
            g["k"] = 1000
        for q, p in zip(probe, params):
            q.grad = p.grad.clone()
        twin.step()
        opt.step()
        state = [opt.state[p]["slow_buffer"] for p in params]
        if step % 3:
            for s, s0 in zip(state, slow):  # slow weights untouched between syncs
                assert torch.equal(s, s0)
            for p, q in zip(params, probe):
                assert torch.equal(p, q)
        else:
            for p, q, s, s0, b in zip(params, probe, state, slow, before):
                expect = s0 + 0.5 * (q.detach() - s0)  # slow <- slow + alpha (fast - slow)
                torch.testing.assert_close(s, expect, rtol=0, atol=1e-7)
                assert torch.equal(p.detach(), s)      # fast weights reset to the slow ones
                assert not torch.equal(p.detach(), b)
            slow = [s.clone() for s in state]


def test_ranger_gradient_centralisation_only_on_weights():
    """GC removes the per-output-channel mean of conv and matrix gradients, not of biases."""
    w = torch.zeros(3, 4, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    opt = Ranger([w, b], lr=1.0, k=1000)
    w.grad = torch.arange(12.0).reshape(3, 4)
    b.grad = torch.ones(3)
    opt.step()
    # step 1 is a momentum step: p -= lr * m / (1 - beta1) = lr * (centred) g
    torch.testing.assert_close(w.detach(), -(w.grad - w.grad.mean(1, keepdim=True)))
    torch.testing.assert_close(b.detach(), -torch.ones(3))
    assert torch.equal(w.grad, torch.arange(12.0).reshape(3, 4))  # p.grad left as it was


def test_ranger_resume_is_bit_identical():
    a, loss_a = _problem(2)
    full = _steps(Ranger(a, lr=1e-2), a, loss_a, 20)

    b, loss_b = _problem(2)
    opt = Ranger(b, lr=1e-2)
    _steps(opt, b, loss_b, 8)  # stops mid-way between two Lookahead syncs (k = 6)
    buf = io.BytesIO()
    torch.save({"params": [p.detach() for p in b], "opt": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    c, loss_c = _problem(2)
    with torch.no_grad():
        for p, s in zip(c, saved["params"]):
            p.copy_(s)
    opt2 = Ranger(c, lr=1e-2)
    opt2.load_state_dict(saved["opt"])
    assert all("slow_buffer" in opt2.state[p] for p in c)
    resumed = _steps(opt2, c, loss_c, 12)
    for x, y in zip(full, resumed):
        assert torch.equal(x, y)


def test_ranger_decreases_a_convex_loss():
    """A quadratic in a matrix (gradient-centralised, so it only reaches the best point of the
    subspace GC leaves it: the loss plateaus above 0) and in a vector (not centralised)."""
    torch.manual_seed(0)
    a = torch.randn(20, 10)
    a = a.T @ a / 20 + 0.1 * torch.eye(10)
    t_mat = torch.randn(6, 10)
    t_mat = t_mat - t_mat.mean(1, keepdim=True)
    t_vec = torch.randn(10)
    x = torch.zeros(6, 10, requires_grad=True)
    v = torch.zeros(10, requires_grad=True)
    opt = Ranger([x, v], lr=0.05)

    def loss():
        d = torch.cat([x - t_mat, (v - t_vec)[None]])
        return ((d @ a) * d).sum()

    first = float(loss().detach())
    for _ in range(400):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < 0.05 * first
    assert (v.detach() - t_vec).norm() < 0.1 * t_vec.norm()


# ------------------------------------------------------------------------------ trainer
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("psp")
    face, _ = make_lmdb(root / "face", n=16, size=16, seed=1, styles=1)
    g, _, _ = tiny_models()
    with torch.no_grad():  # fresh noise strengths are 0: make the noise inputs matter
        for name, prm in g.named_parameters():
            if name.endswith("noise.weight"):
                prm.fill_(0.5)
    known = torch.linspace(-1, 1, g.style_dim).reshape(1, -1)
    g.latent_avg.copy_(known)
    save_checkpoint(root / "g.pt", {"g_ema": g})
    g.latent_avg.zero_()
    save_checkpoint(root / "g_no_avg.pt", {"g_ema": g})
    rosinality = {"g_ema": {k: v for k, v in g.state_dict().items() if k in g.face_state_keys()},
                  "latent_avg": known[0] * 2}
    torch.save(rosinality, root / "rosinality.pt")
    return {"root": root, "face": str(face), "g": str(root / "g.pt"), "known": known,
            "g_no_avg": str(root / "g_no_avg.pt"), "rosinality": str(root / "rosinality.pt")}


def _trainer(tiny, out, generator=None, **kw):
    cfg = from_dict(psp_train.PSPConfig, psp_cfg(**kw))
    with pytest.warns(UserWarning, match="switched OFF"):
        return psp_train.PSPTrainer.from_paths(cfg, CPU, out, tiny["face"], generator or tiny["g"])


def test_paper_defaults_in_the_dataclass():
    cfg = psp_train.PSPConfig()
    assert (cfg.optimizer, cfg.lr, cfg.betas, cfg.train_noise) == ("ranger", 1e-4, None, "random")


@pytest.mark.parametrize("optimizer, betas, noise, cls, want_betas", [
    ("ranger", None, "random", Ranger, (0.95, 0.999)),
    ("adam", None, "random", torch.optim.Adam, (0.9, 0.999)),
    ("adam", [0.0, 0.99], "constant", torch.optim.Adam, (0.0, 0.99)),
    ("ranger", None, "constant", Ranger, (0.95, 0.999)),
])
def test_psp_trainer_options_train_two_steps(tiny, tmp_path, optimizer, betas, noise, cls,
                                             want_betas):
    t = _trainer(tiny, tmp_path, optimizer=optimizer, betas=betas, train_noise=noise)
    assert type(t.opt) is cls and tuple(t.opt.param_groups[0]["betas"]) == want_betas
    assert t.opt.param_groups[0]["lr"] == 1e-4
    ph = t.phases()[0]
    before = [p.detach().clone() for p in t.enc.parameters()]
    for step in range(2):
        ph.optimizer.zero_grad(set_to_none=True)
        loss, _ = ph.loss(t.get_batch(step), step)
        loss.backward()
        ph.optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, t.enc.parameters()))


def _spy(monkeypatch, g):
    """Record, per generator call, whether it got fresh noise maps (True) or constant noise."""
    seen = []
    forward = g.forward

    def spy(*a, **kw):
        seen.append(kw.get("noise") is not None and kw.get("randomize_noise", True))
        if kw.get("noise") is None:
            assert kw["randomize_noise"] is False
        return forward(*a, **kw)

    monkeypatch.setattr(g, "forward", spy)
    return seen


def test_train_noise_random_only_in_the_loss(tiny, tmp_path, monkeypatch):
    t = _trainer(tiny, tmp_path)  # paper defaults: random noise in the loss
    seen = _spy(monkeypatch, t.g)
    t.loss(t.get_batch(0), 0)
    t.evaluate()
    t.sample()
    assert seen[0] is True and seen[1:] and not any(seen[1:])
    # Noise maps per step: fixed by the step, different between steps, one per sample.
    b0, b0_again, b1 = t.get_batch(0), t.get_batch(0), t.get_batch(1)
    shapes = [tuple(c.shape[1:]) for c in t.g.constant_noise()]
    assert [tuple(b0[f"noise_{i}"].shape) for i in range(len(shapes))] == \
        [(4, *s) for s in shapes]
    assert all(torch.equal(b0[k], b0_again[k]) for k in b0)
    assert not torch.equal(b0["noise_1"], b1["noise_1"])
    assert not torch.equal(b0["noise_1"][0], b0["noise_1"][1])
    # ... and they change the reconstruction (the fixture's noise strengths are not 0).
    x = b0["x"][:2]
    with torch.no_grad():
        noisy = t.reconstruct(x, [b0[f"noise_{i}"][:2] for i in range(len(shapes))])[0]
        assert not torch.equal(noisy, t.reconstruct(x)[0])
        assert torch.equal(t.reconstruct(x)[0], t.reconstruct(x)[0])
    c = _trainer(tiny, tmp_path / "c", train_noise="constant")
    seen = _spy(monkeypatch, c.g)
    batch = c.get_batch(0)
    assert set(batch) == {"x"}
    c.loss(batch, 0)
    assert seen == [False]


@pytest.mark.parametrize("key, value, words", [
    ("optimizer", "sgd", "psp.optimizer must be one of \\['ranger', 'adam'\\], got 'sgd'"),
    ("train_noise", "none", "psp.train_noise must be one of \\['random', 'constant'\\]"),
])
def test_unknown_option_names_are_clear_errors(tiny, tmp_path, key, value, words):
    cfg = from_dict(psp_train.PSPConfig, psp_cfg(**{key: value}))
    with pytest.raises(ValueError, match=words):
        psp_train.PSPTrainer.from_paths(cfg, CPU, tmp_path, tiny["face"], tiny["g"])
    if key == "optimizer":
        with pytest.raises(ValueError, match=words):
            psp_train.make_optimizer(cfg, [torch.zeros(1, requires_grad=True)])


def test_latent_avg_comes_from_the_checkpoint(tiny, tmp_path):
    t = _trainer(tiny, tmp_path)
    assert t.latent_avg_source == "checkpoint"
    torch.testing.assert_close(t.enc.latent_avg, tiny["known"].expand_as(t.enc.latent_avg))
    r = _trainer(tiny, tmp_path / "r", tiny["rosinality"])
    assert r.latent_avg_source == "checkpoint"
    torch.testing.assert_close(r.enc.latent_avg, 2 * tiny["known"].expand_as(r.enc.latent_avg))


def test_missing_latent_avg_is_estimated_loudly(tiny, tmp_path, capsys):
    cfg = from_dict(psp_train.PSPConfig, psp_cfg())
    with pytest.warns(UserWarning) as record:
        t = psp_train.PSPTrainer.from_paths(cfg, CPU, tmp_path, tiny["face"],
                                            tiny["g_no_avg"])
    assert any("ESTIMATED" in str(w.message) for w in record)
    assert t.latent_avg_source == "estimated" and t.enc.latent_avg.any()
    out = capsys.readouterr().out
    assert "WARNING: generator checkpoint" in out and "ESTIMATED" in out
    assert "latent average from the estimated" in out


def _run(tiny, out, stop=None, **kw):
    """The CLI over 6 steps of 4 images, a snapshot every 8 images."""
    cfg = write_yaml(out.parent / f"{out.name}.yaml",
                     psp_cfg(loop=loop(total_images=24, snapshot_every=8, eval_every=0), **kw))
    args = ["--config", str(cfg), "--face", tiny["face"], "--generator", tiny["g"],
            "--out", str(out)]
    return psp_train.main(args + (["--stop-after-images", str(stop)] if stop else []))


def test_ranger_snapshot_resumes_exactly(tiny, tmp_path):
    """Stopped after 12 images (3 steps) and resumed from the 8-image snapshot: the same
    encoder as an uninterrupted 6-step run (Lookahead syncs at step 6 in between)."""
    straight = _run(tiny, tmp_path / "a")
    assert _run(tiny, tmp_path / "b", stop=12) is None
    resumed = _run(tiny, tmp_path / "b")
    snap = sorted((tmp_path / "b" / "snapshots").glob("*.pt"))
    opt_state = load_checkpoint(snap[0], build=False)["extra"]["optimizers"]["psp"]
    assert all("slow_buffer" in s for s in opt_state["state"].values())
    a = load_checkpoint(straight, build=False)["models"]["psp"]["state_dict"]
    b = load_checkpoint(resumed, build=False)["models"]["psp"]["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_final_checkpoint_records_the_recipe(tiny, tmp_path):
    final = _run(tiny, tmp_path / "f", optimizer="adam", betas=[0.0, 0.99],
                 train_noise="constant")
    extra = load_checkpoint(final, build=False)["extra"]
    assert (extra["optimizer"], extra["betas"], extra["train_noise"],
            extra["latent_avg_source"]) == ("adam", [0.0, 0.99], "constant", "checkpoint")
    enc = load_psp_encoder(final)
    torch.testing.assert_close(enc.latent_avg, tiny["known"].expand_as(enc.latent_avg))
