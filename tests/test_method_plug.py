"""What the method plug (``snappix.engine.method.Method`` trained by ``snappix.engine.runner.fit``)
promises, checked with a toy method added purely through the plug, without touching ``snappix/engine``:

* its objective is an ``nn.Module`` with buffers (a ``steps_seen`` counter bumped on every training call,
  ``prototypes`` set by the epoch hook) whose state is checkpointed and restored on resume;
* its ``batch_transform`` runs a frozen teacher (outside the trained model) under no_grad on the
  unwrapped model, and the teacher never reaches a checkpoint;
* its ``on_epoch_start`` hook runs before every epoch, after a resume only for the remaining ones;
* its ``evaluate`` runs every epoch, ``best_metric`` writes ``checkpoint-best.pth`` and the best value
  survives a resume;
* killed for real (SIGKILL before the first forward of epoch 2) and resumed, the run equals an
  uninterrupted one bit for bit;
* a checkpoint without objective state, or with state that does not fit, is refused with
  ``ObjectiveStateError``; an objective with trainable parameters is refused;
* ``--opt sgd --lr_scale none --lr_sched multistep``: the lr steps down exactly at the milestones,
  unscaled, with SGD momentum.

The subprocess runs of this module run its ``__main__`` (``python tests/test_method_plug.py FLAGS``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from engine_toys import TOY_FLAGS, TinyViT, ToyVideos, finish, launch_script, mse_objective, print_summary
from snappix.engine import args as A
from snappix.engine import checkpoint as C
from snappix.engine import distributed as D
from snappix.engine.method import Method, ObjectiveStateError
from snappix.engine.runner import fit, start_run
from snappix.errors import UserError

SCRIPT = Path(__file__).resolve()
EPOCHS = 3
MICRO_BATCHES = 8  # per epoch: 32 clips in batches of 4 (TOY_FLAGS), 2 per optimiser step
FEATURES = 3 * 2 * 4 * 4  # a flattened toy clip
KILL_AT_EPOCH_2 = "train_step:kill@epoch=2"
PLUG_FLAGS = (*TOY_FLAGS, "--eval_freq", "1", "--precision", "fp32")


# ---------------------------------------------------------------------------------------------------
# the toy method
# ---------------------------------------------------------------------------------------------------
class CountingObjective(nn.Module):
    """MSE to ``batch["target"]`` (else the model's own target) plus a small pull of the batch-mean
    prediction towards ``prototypes``; counts its calls in ``steps_seen``. Buffers only."""

    def __init__(self, dim: int = FEATURES):
        super().__init__()
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("prototypes", torch.zeros(dim))

    def forward(self, outputs, batch):
        self.steps_seen += 1
        pred = outputs["pred"].float()
        mse = (pred - batch.get("target", outputs["target"]).float()).pow(2).mean()
        pull = (pred.mean(0) - self.prototypes).pow(2).mean()
        return mse + 0.01 * pull, {"mse": mse.item(), "pull": pull.item()}


def make_teacher() -> nn.Linear:
    """A frozen linear map clip -> target, the same in every process (its own generator)."""
    g = torch.Generator().manual_seed(1234)
    teacher = nn.Linear(FEATURES, FEATURES)
    with torch.no_grad():
        teacher.weight.copy_(torch.randn(FEATURES, FEATURES, generator=g) * 0.1)
        teacher.bias.copy_(torch.randn(FEATURES, generator=g) * 0.1)
    return teacher.requires_grad_(False)


def _plain(state) -> dict:
    return {k: v.tolist() for k, v in state.items()}


def plug_method(record: dict) -> Method:
    """The toy method; ``record`` collects what the hooks saw in this process."""
    model, objective, teacher = TinyViT(), CountingObjective(), make_teacher()
    record.update(hook_epochs=[], eval_epochs=[], transforms=0, grad_in_transform=[], objective_at_start=None)

    def batch_transform(batch, net):
        assert not torch.is_grad_enabled(), "batch_transform must run under no_grad"
        assert net is model, "batch_transform must get the unwrapped trained model"
        record["transforms"] += 1
        record["grad_in_transform"] = sorted({*record["grad_in_transform"], torch.is_grad_enabled()})
        batch["target"] = teacher(batch["video"].flatten(1))
        return batch

    def on_epoch_start(epoch, net, loader):
        assert net is model, "on_epoch_start must get the unwrapped trained model"
        if record["objective_at_start"] is None:  # the state this process starts from (restored on resume)
            record["objective_at_start"] = _plain(objective.state_dict())
        record["hook_epochs"].append(epoch)
        with torch.no_grad():  # a k-means-like refresh from the current model on a training batch
            feats = net(next(iter(loader))["video"])["pred"].float().mean(0)
            objective.prototypes.mul_(0.5).add_(feats + epoch)

    def evaluate(net, epoch, logger):
        record["eval_epochs"].append(epoch)
        clips = next(iter(DataLoader(ToyVideos(8), batch_size=8)))["video"]
        with torch.no_grad():
            mse = (net(clips)["pred"] - teacher(clips.flatten(1))).pow(2).mean().item()
        # "score" falls by design, so the best stays epoch 0's: a resume that forgot it would take epoch 2
        return {"mse": mse, "score": 10.0 - epoch}

    return Method(model=model, objective=objective, train_set=ToyVideos(32), batch_transform=batch_transform,
                  on_epoch_start=on_epoch_start, evaluate=evaluate, best_metric="score", name="plug")


def plug_main(argv) -> None:
    """The toy method's entry point: parse -> start_run -> fit; prints a JSON summary."""
    args = A.parse_args(A.build_parser("plug"), argv)
    info = start_run(args, "plug")
    record: dict = {}
    method = plug_method(record)
    history = fit(args, info, method)
    print_summary({"start_epoch": history["start_epoch"], "best": history["best"],
                   "losses": {str(e): s["loss"] for e, s in history["train"].items()},
                   "val_epochs": sorted(history["val"]), "record": record,
                   "objective": _plain(method.objective.state_dict())})
    D.cleanup()


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def _log(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "log.txt").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------------
# kill, resume, compare
# ---------------------------------------------------------------------------------------------------
def test_plug_method_killed_and_resumed_equals_an_uninterrupted_run(tmp_path):
    full_proc = launch_script(SCRIPT, [*PLUG_FLAGS, "--output_dir", "full"], tmp_path)
    cut_proc = launch_script(SCRIPT, [*PLUG_FLAGS, "--output_dir", "cut"], tmp_path, fault=KILL_AT_EPOCH_2)
    full = finish(full_proc)
    assert finish(cut_proc, expect_rc=-9) is None  # SIGKILLed before the first forward of epoch 2
    cut = tmp_path / "cut"
    saved = C.load_checkpoint(cut / "checkpoint-latest.pth")
    assert saved["epoch"] == 1 and sorted(saved["objective"]) == ["prototypes", "steps_seen"]
    assert saved["objective"]["steps_seen"].item() == 2 * MICRO_BATCHES
    assert saved["objective"]["prototypes"].abs().sum() > 0

    second = finish(launch_script(SCRIPT, [*PLUG_FLAGS, "--output_dir", "cut"], tmp_path))  # auto-resume
    rec, full_rec = second["record"], full["record"]
    # the uninterrupted run: every hook every epoch, the counter counts every training micro-batch
    assert full["start_epoch"] == 0 and full_rec["hook_epochs"] == full_rec["eval_epochs"] == [0, 1, 2]
    assert full_rec["transforms"] == EPOCHS * MICRO_BATCHES and full_rec["grad_in_transform"] == [False]
    assert full_rec["objective_at_start"] == {"steps_seen": 0, "prototypes": [0.0] * FEATURES}
    assert full["objective"]["steps_seen"] == EPOCHS * MICRO_BATCHES
    # the resumed process: starts from the saved objective state, hooks only for the remaining epoch
    assert second["start_epoch"] == 2
    assert rec["objective_at_start"] == _plain(saved["objective"])
    assert rec["hook_epochs"] == rec["eval_epochs"] == [2] and second["val_epochs"] == [2]
    assert rec["transforms"] == MICRO_BATCHES and rec["grad_in_transform"] == [False]
    # ... and ends where the uninterrupted run ended, bit for bit
    assert second["objective"] == full["objective"]
    assert second["losses"] == {"2": full["losses"]["2"]}
    last, full_last = C.load_checkpoint(cut / "checkpoint-latest.pth"), C.load_checkpoint(tmp_path / "full" /
                                                                                            "checkpoint-latest.pth")
    assert last["epoch"] == full_last["epoch"] == 2
    assert last["model"].keys() == full_last["model"].keys()
    for k in last["model"]:
        assert torch.equal(last["model"][k], full_last["model"][k]), k
    for k in ("steps_seen", "prototypes"):
        assert torch.equal(last["objective"][k], full_last["objective"][k]), k
    # evaluation ran every epoch; the best (epoch 0, saved by the killed process) survived the resume
    assert second["best"] == full["best"] == 10.0
    best = C.load_checkpoint(cut / "checkpoint-best.pth")
    assert best["epoch"] == 0 and best["best_value"] == 10.0 and best["best_metric"] == "score"
    log = _log(cut)
    assert [r["epoch"] for r in log] == [0, 1, 2] and [r["val_score"] for r in log] == [10.0, 9.0, 8.0]
    assert [r["train_loss"] for r in log] == [r["train_loss"] for r in _log(tmp_path / "full")]
    # the teacher is no part of the trained model: not among its weights, nowhere in a checkpoint
    assert set(last["model"]) == set(TinyViT().state_dict())
    teacher = make_teacher()
    for path in sorted(cut.glob("checkpoint-*.pth")):
        for t in _tensors(C.load_checkpoint(path)):
            assert t.shape != teacher.weight.shape, f"{path.name} holds a {tuple(t.shape)} tensor"


# ---------------------------------------------------------------------------------------------------
# refused objectives (in process)
# ---------------------------------------------------------------------------------------------------
def _args(out: Path, *extra: str):
    return A.parse_args(A.build_parser("plug"), [*PLUG_FLAGS, "--output_dir", str(out), "--warmup_epochs", "0",
                                                 *extra])


@pytest.fixture
def info():
    return D.init_distributed("cpu", -1, configure_logging=False)


def test_checkpoint_without_or_with_unfit_objective_state_is_refused(tmp_path, info):
    # a method whose objective is a plain function saves no objective state ...
    fit(_args(tmp_path / "a", "--epochs", "1"), info, Method(TinyViT(), mse_objective, ToyVideos(8)))
    ckpt = tmp_path / "a" / "checkpoint-latest.pth"
    assert C.load_checkpoint(ckpt)["objective"] is None
    # ... so a method whose objective keeps buffers cannot resume from it
    with pytest.raises(ObjectiveStateError, match=re.escape(str(ckpt))) as err:
        fit(_args(tmp_path / "a", "--epochs", "2"), info, Method(TinyViT(), CountingObjective(), ToyVideos(8)))
    assert isinstance(err.value, UserError) and "no objective state" in str(err.value)
    assert "steps_seen" in str(err.value) and "CountingObjective" in str(err.value)
    assert C.load_checkpoint(ckpt)["epoch"] == 0  # nothing trained, the checkpoint left as it was
    # state of another shape: refused too, naming the checkpoint
    fit(_args(tmp_path / "b", "--epochs", "1"), info, Method(TinyViT(), CountingObjective(), ToyVideos(8)))
    ckpt = tmp_path / "b" / "checkpoint-latest.pth"
    assert C.load_checkpoint(ckpt)["objective"]["steps_seen"].item() == 2  # 8 clips / batch 4
    with pytest.raises(ObjectiveStateError, match=re.escape(str(ckpt)) + ".*does not fit"):
        fit(_args(tmp_path / "b", "--epochs", "2"), info, Method(TinyViT(), CountingObjective(dim=5), ToyVideos(8)))


class LearnedObjective(CountingObjective):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))


def test_objective_with_trainable_parameters_is_refused(tmp_path, info):
    with pytest.raises(ValueError, match=r"LearnedObjective has trainable parameters \['scale'\]"):
        fit(_args(tmp_path), info, Method(TinyViT(), LearnedObjective(), ToyVideos(8)))
    assert not list(tmp_path.glob("checkpoint-*.pth"))
    frozen = LearnedObjective()
    frozen.scale.requires_grad_(False)  # a frozen parameter is state, not training: accepted
    history = fit(_args(tmp_path, "--epochs", "1"), info, Method(TinyViT(), frozen, ToyVideos(8)))
    assert history["train"][0]["steps"] == 1 and frozen.steps_seen.item() == 2


# ---------------------------------------------------------------------------------------------------
# SGD + unscaled multi-step lr, end to end
# ---------------------------------------------------------------------------------------------------
SGD_MULTISTEP = ("--opt", "sgd", "--lr_scale", "none", "--lr", "0.1", "--lr_sched", "multistep",
                 "--lr_decay_rate", "0.2")


def test_sgd_multistep_unscaled_lr_end_to_end(tmp_path, info):
    args = _args(tmp_path, *SGD_MULTISTEP, "--lr_decay_epochs", "1", "2")
    history = fit(args, info, Method(TinyViT(), mse_objective, ToyVideos(32)))
    expected = [0.1, 0.1 * 0.2, 0.1 * 0.2 ** 2]  # the base lr, not 0.1 * 8 / 256 (batch 4 x acc 2)
    assert expected == pytest.approx([0.1, 0.02, 0.004], rel=1e-12)
    assert [history["train"][e]["lr"] for e in range(EPOCHS)] == pytest.approx(expected, rel=1e-12)  # an ulp apart by CPU
    assert [history["train"][e]["min_lr"] for e in range(EPOCHS)] == pytest.approx(expected, rel=1e-12)  # every group
    assert [r["train_lr"] for r in _log(tmp_path)] == pytest.approx(expected, rel=1e-12)
    state = C.load_checkpoint(tmp_path / "checkpoint-latest.pth")["optimizer"]
    groups = state["param_groups"]
    assert {g["name"] for g in groups} == {"decay", "no_decay"}
    for g in groups:  # torch.optim.SGD with momentum (AdamW groups have betas)
        assert "betas" not in g and g["momentum"] == 0.9 and g["nesterov"] is False
        assert g["lr"] == pytest.approx(expected[-1], rel=1e-12)
    buffers = [s["momentum_buffer"] for s in state["state"].values()]
    assert len(buffers) == sum(len(g["params"]) for g in groups)
    assert all(b is not None and b.abs().sum() > 0 for b in buffers)


@pytest.mark.parametrize("milestones, message", [
    (("--lr_decay_epochs", "2", "1"), "increasing"),
    (("--lr_decay_epochs", "1", "--lr_decay_steps", "4"), "exactly one"),
    ((), "exactly one"),
])
def test_bad_lr_milestones_are_a_config_error(tmp_path, info, milestones, message):
    with pytest.raises(A.ConfigError, match=message):
        fit(_args(tmp_path, *SGD_MULTISTEP, *milestones), info, Method(TinyViT(), mse_objective, ToyVideos(32)))
    assert not list(tmp_path.glob("checkpoint-*.pth"))


if __name__ == "__main__":
    plug_main(sys.argv[1:])
