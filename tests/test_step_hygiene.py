"""GPU hygiene of the training step, checked on CPU (docs/performance.md).

* No value is read back to the host inside an iteration's phases (each read is a GPU sync).
* Every host -> device copy of the iteration goes through ``placement.to_device`` (pinned and
  non-blocking on CUDA; a plain ``.to(device)`` of a host tensor waits for the GPU queue).
* ``torch.compile`` traces each fast phase into whole graphs, once: no graph break, no
  recompilation, and the compiled step computes what the eager one does. The ``aot_eager``
  backend runs Dynamo and AOTAutograd without code generation, so this is quick on CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import bench_throughput as bench  # noqa: E402

from models.train.step import StepRunner  # noqa: E402

READ_BACK_OPS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select",
                 "aten::_unique2", "aten::unique_dim", "aten::equal"}

# narrow networks at the smallest sizes they build at; 17 steps cover every lazy-regularisation
# phase (path length every 4, R1 every 16)
BUILDERS = {
    "blendgan": lambda root, **kw: bench.build_blendgan(root, 16, 4, width="narrow", **kw),
    "style_encoder": lambda root, **kw: bench.build_style_encoder(root, 32, 4, width="narrow", **kw),
    "psp": lambda root, **kw: bench.build_psp(root, 32, 2, width="narrow", **kw),
}


class ReadBackSpy(TorchDispatchMode):
    """Records ops that return tensor values to Python. Adam's step counters are skipped: they
    are host tensors on every device (unless fused/capturable), so reading them syncs nothing."""

    def __init__(self, host_counters=()):
        super().__init__()
        self.host_ids = {id(t) for t in host_counters}
        self.hits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in READ_BACK_OPS and not (args and id(args[0]) in self.host_ids):
            self.hits.append(name)
        return func(*args, **(kwargs or {}))


def adam_step_counters(runner):
    return [s["step"] for ph in runner.phases for s in ph.optimizer.state.values() if "step" in s]


class DeviceCopySpy:
    """Records ``Tensor.to`` calls that name a device (or a tensor to follow) without
    ``non_blocking=True``: on a GPU each is a blocking copy when its source lives on the host."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        original = torch.Tensor.to

        def spy(tensor, *args, **kwargs):
            targets = list(args) + [kwargs.get("device"), kwargs.get("other")]
            names_device = any(isinstance(a, (torch.device, str, torch.Tensor)) for a in targets)
            if names_device and not kwargs.get("non_blocking", False):
                caller = sys._getframe(1)
                self.calls.append(f"{Path(caller.f_code.co_filename).name}:{caller.f_lineno}")
            return original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, "to", spy)


def test_the_spies_see_what_they_look_for(monkeypatch):
    with ReadBackSpy() as spy:
        torch.ones(3).sum().item()
        bool(torch.ones(1) > 0)
    assert spy.hits == ["aten::_local_scalar_dense"] * 2
    copies = DeviceCopySpy(monkeypatch)
    torch.ones(2).to("cpu")
    torch.ones(2).to(dtype=torch.float64)
    torch.ones(2).to("cpu", non_blocking=True)
    assert [c.split(":")[0] for c in copies.calls] == ["test_step_hygiene.py"]


@pytest.mark.parametrize("part", sorted(BUILDERS))
def test_an_iteration_reads_nothing_back_and_copies_only_through_to_device(part, tmp_path,
                                                                           monkeypatch):
    runner = StepRunner(BUILDERS[part](tmp_path))
    runner.step(0)  # creates the optimiser state
    copies = DeviceCopySpy(monkeypatch)
    for step in range(1, 17):
        micro = runner.batches(step)
        with ReadBackSpy(adam_step_counters(runner)) as spy:
            runner.step(step, micro)
        assert not spy.hits, f"{part} step {step} reads values back: {spy.hits}"
    assert not copies.calls, f"{part}: device copies outside placement.to_device: {copies.calls}"


def train(part, root, steps, **loop):
    torch.manual_seed(0)
    runner = StepRunner(BUILDERS[part](root, **loop))
    records = []
    for step in range(steps):
        runner.step(step)
        records.append(dict(zip(*runner.pop_stats())))
    return runner, records


CASES = [(part, {}) for part in sorted(BUILDERS)] + [
    ("blendgan", {"precision": "bf16", "channels_last": True})]  # the GPU fast path, compiled


@pytest.mark.parametrize("part,fast_options", CASES, ids=[f"{p}-{'-'.join(o) or 'fp32'}"
                                                          for p, o in CASES])
def test_compiled_phases_are_whole_graphs_traced_once_and_match_eager(part, fast_options,
                                                                       tmp_path):
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    steps = 6 if part == "blendgan" else 3
    runner, fast = train(part, tmp_path / "compiled", steps, compile=True,
                         compile_backend="aot_eager", **fast_options)
    _, eager = train(part, tmp_path / "eager", steps, **fast_options)
    compiled_phases = sum(runner.fast.values())
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == compiled_phases, dict(counters["stats"])
    torch.testing.assert_close(fast, eager, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()


def test_bad_compile_mode_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="loop.compile_mode"):
        StepRunner(BUILDERS["style_encoder"](tmp_path, compile=True, compile_mode="fastest"))
