"""Saccade-VSSL objectives on hand-checked cases: instance NCE + memory bank, PixPro prediction, PCL prototypes
(faiss k-means), the combined loss and its checkpointed state (docs/methods/saccade.md, "Objectives")."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from snappix.engine.method import Method, check_objective
from snappix.engine.optim import param_groups
from snappix.models.saccade_backbones import SaccadeBackbone
from snappix.objectives.instance_nce import InstanceNCE, ProjectionHead
from snappix.objectives.pixpro import PixProHead, PixProLoss, propagate, split_views
from snappix.objectives.prototypes import PrototypeLoss, concentration, kmeans
from snappix.objectives.saccade import SaccadeLoss, SaccadeSSLModel, instance_features

T = 0.07


# ------------------------------------------------------------------------------------------------ instance NCE
def test_nce_loss_hand_checked():
    nce = InstanceNCE(n_instances=4, feat_dim=2, nce_k=2, temperature=T)
    q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    rows = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]],
                         [[0.0, 1.0], [0.6, 0.8], [1.0, 0.0]]])
    outputs = {"proj": q, "bank_proj": rows, "feat": torch.zeros(2, 2)}
    loss, metrics = nce(outputs, {"instance": torch.tensor([0, 1])})
    # query 0: logits [1, 0, -1] / T; query 1: [0.8, 1, 0.6] / T; target 0
    l0 = -math.log(math.exp(1 / T) / (math.exp(1 / T) + 1 + math.exp(-1 / T)))
    l1 = -math.log(math.exp(0.8 / T) / (math.exp(0.8 / T) + math.exp(1 / T) + math.exp(0.6 / T)))
    assert loss.item() == pytest.approx((l0 + l1) / 2, rel=1e-5)
    assert set(metrics) == {"nce_loss", "nce_pos_prob"}


def test_memory_bank_momentum_update():
    nce = InstanceNCE(n_instances=5, feat_dim=3, nce_k=2, momentum=0.5)
    before = nce.memory.clone()
    f = torch.tensor([[2.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 6.0]])
    nce.update(f, torch.tensor([1, 3, 1]))  # slot 1 gets two features (clips A and B): their mean
    torch.testing.assert_close(nce.memory[1], 0.5 * before[1] + 0.5 * torch.tensor([1.0, 0.0, 3.0]))
    torch.testing.assert_close(nce.memory[3], 0.5 * before[3] + 0.5 * f[1])
    for untouched in (0, 2, 4):
        torch.testing.assert_close(nce.memory[untouched], before[untouched])
    # the memory initialisation: uniform in [-s, s], s = 1 / sqrt(D / 3); the same on every rank (seeded)
    big = InstanceNCE(100, 512)
    assert big.memory.abs().max() <= 1 / math.sqrt(512 / 3)
    torch.testing.assert_close(big.memory, InstanceNCE(100, 512).memory)


def test_bank_rows_and_draw():
    nce = InstanceNCE(n_instances=50, feat_dim=4, nce_k=7)
    ids = torch.tensor([3, 9, 49])
    idx = nce.draw(ids, generator=torch.Generator().manual_seed(0))
    assert idx.shape == (3, 8) and idx[:, 0].tolist() == [3, 9, 49]
    assert int(idx.min()) >= 0 and int(idx.max()) < 50
    rows = nce.bank_rows(ids, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rows, nce.memory[idx])
    with pytest.raises(ValueError):
        nce.draw(torch.tensor([50]))


def test_projection_head_unit_norm():
    head = ProjectionHead(8, 4)
    out = head(torch.randn(3, 5, 8))
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3, 5))
    assert head.linear.bias.abs().sum() == 0


# ------------------------------------------------------------------------------------------------ PixPro
def test_propagate_hand_checked():
    # two positions: f1 = (1, 0), f2 = (1, 1)/sqrt2 -> cos = [[1, .707], [.707, 1]]; p = 2 -> [[1, .5], [.5, 1]]
    feat = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).reshape(1, 2, 1, 1, 2)
    value = torch.tensor([[2.0, 0.0], [0.0, 3.0]]).reshape(1, 2, 1, 1, 2)  # v1 = (2, 0) -> (1, 0); v2 -> (0, 1)
    out = propagate(feat, value, p=2.0, clamp=0.0).reshape(2, 2)
    expected = torch.tensor([[1.0, 0.5], [0.5, 1.0]])  # columns: y1 = 1 v1 + .5 v2, y2 = .5 v1 + 1 v2
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    # negative similarities are clamped to 0: f2 = -f1 -> each position keeps only its own value
    feat = torch.tensor([[1.0, -1.0], [0.0, 0.0]]).reshape(1, 2, 1, 1, 2)
    out = propagate(feat, value, p=1.0, clamp=0.0).reshape(2, 2)
    torch.testing.assert_close(out, torch.eye(2))


def test_split_views_order():
    # 1 video, 4 clips [A0, A1, B0, B1], clip c filled with its index, T' = 2
    maps = torch.arange(4.0).reshape(4, 1, 1, 1, 1).expand(4, 3, 2, 2, 2)
    fa, fb = split_views(maps, 4)
    assert fa.shape == (1, 3, 4, 2, 2)
    assert fa[0, 0, :, 0, 0].tolist() == [0, 0, 1, 1] and fb[0, 0, :, 0, 0].tolist() == [2, 2, 3, 3]
    with pytest.raises(ValueError):
        split_views(maps[:3], 4)


def test_pixpro_head_and_loss():
    torch.manual_seed(0)
    head = PixProHead(dim=8, pro_p=4.0, clips_per_video=6)
    conv5 = torch.randn(12, 8, 2, 3, 3, requires_grad=True)
    out = head(conv5)
    assert out["pix_target_a"].shape == (2, 8, 6, 3, 3)
    torch.testing.assert_close(out["pix_pred_a"], head.prop(out["pix_target_b"]))
    loss, metrics = PixProLoss()(out, {})
    expected = ((out["pix_pred_a"] - out["pix_target_a"]).abs().mean()
                + (out["pix_pred_b"] - out["pix_target_b"]).abs().mean()) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert metrics["pred_loss"] == pytest.approx(loss.item())
    # stop-gradient on the targets: the loss against a fixed target equals L1 of pred only
    zero = {k: torch.zeros(1, 2, 2, 1, 1) for k in ("pix_pred_a", "pix_pred_b")}
    one = {k: torch.ones(1, 2, 2, 1, 1, requires_grad=True) for k in ("pix_target_a", "pix_target_b")}
    loss, _ = PixProLoss()({**zero, **one}, {})
    assert loss.item() == 1.0 and not loss.requires_grad


# ------------------------------------------------------------------------------------------------ PCL
def test_kmeans_recovers_toy_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 5.0, 0]])
    truth = np.repeat(np.arange(3), 60)
    x = centres[truth] + 0.1 * rng.standard_normal((180, 4))
    cent, assign, sq = kmeans(x, 3, seed=1234)
    assert cent.shape == (3, 4) and assign.shape == (180,)
    labels = [set(assign[truth == c].tolist()) for c in range(3)]
    assert all(len(s) == 1 for s in labels) and len(set.union(*labels)) == 3  # a perfect partition
    np.testing.assert_allclose(sq, ((x - cent[assign]) ** 2).sum(1), rtol=1e-3, atol=1e-4)


def test_concentration_formula():
    assign = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    sq = np.array([1.0, 4.0, 0.0, 1.0, 4.0, 9.0, 1.0, 1.0])
    phi = np.array([1.5 / math.log(12), 1.0 / math.log(13), 0.0, 1.0 / math.log(12)])
    phi[2] = phi.max()  # the singleton takes the largest phi
    phi = np.clip(phi, np.percentile(phi, 10), np.percentile(phi, 90))
    phi = T * phi / phi.mean()
    np.testing.assert_allclose(concentration(sq, assign, 4, T), phi, rtol=1e-6)
    assert concentration(sq, assign, 4, T).mean() == pytest.approx(T)


def _pcl_with(centroids, density, assign) -> PrototypeLoss:
    pcl = PrototypeLoss(n_instances=len(assign), dim=2, num_clusters=[len(centroids)], num_negatives=16)
    c, d, a = pcl.clustering(0)
    c.copy_(torch.tensor(centroids))
    d.copy_(torch.tensor(density))
    a.copy_(torch.tensor(assign))
    pcl.active.fill_(True)
    return pcl


def test_pcl_loss_hand_checked():
    pcl = _pcl_with([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]], [0.1, 0.2, 0.5], [0, 1, 2])
    q = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    loss, metrics = pcl({"proj": q}, {"instance": torch.tensor([0, 1])})
    # query 0 (cluster 0): pos 0.6 / .1 = 6; negatives cluster 1: 0.8 / .2 = 4, cluster 2: -0.6 / .5
    l0 = -math.log(math.exp(6) / (math.exp(6) + math.exp(4) + math.exp(-1.2)))
    # query 1 (cluster 1): pos 0 / .2 = 0; negatives cluster 0: 1 / .1 = 10, cluster 2: -1 / .5 = -2
    l1 = -math.log(1 / (1 + math.exp(10) + math.exp(-2)))
    assert loss.item() == pytest.approx((l0 + l1) / 2, rel=1e-5)
    assert metrics["proto_acc"] == 0.5


def test_pcl_inactive_and_schedule():
    pcl = PrototypeLoss(n_instances=10, dim=4, num_clusters=[2], fs_warmup_epoch=241, cluster_freq=5, epochs=300)
    loss, metrics = pcl({"proj": torch.randn(3, 4)}, {"instance": torch.tensor([0, 1, 2])})
    assert loss.item() == 0 and metrics["proto_loss"] == 0
    assert [e for e in range(1, 301) if pcl.due(e)] == list(range(245, 300, 5))
    assert not pcl.on_epoch_start(243, lambda: pytest.fail("not due: no features needed"))  # 1-based 244
    with pytest.raises(ValueError):
        PrototypeLoss(n_instances=10, dim=4, num_clusters=[11])


# ------------------------------------------------------------------------------------------------ together
def _toy(n_videos=4, clusters=(3, 4)):
    torch.manual_seed(0)
    backbone = SaccadeBackbone("r3d", width=8, in_chans=1, focus_level=0)
    model = SaccadeSSLModel(backbone, proj_dim=16, lr_ratio=1e-3, pro_p=1.0)
    loss = SaccadeLoss(n_instances=n_videos * 3, feat_dim=64, proj_dim=16, nce_k=5, num_clusters=list(clusters),
                       fs_warmup_epoch=1, cluster_freq=1)
    ids = torch.arange(n_videos)[:, None] * 3 + torch.tensor([0, 1, 2, 0, 1, 2])
    batch = {"video": torch.rand(n_videos, 6, 1, 8, 32, 32), "focus": torch.rand(n_videos, 6, 1, 32, 32),
             "instance": ids}
    return model, loss, batch


def test_combined_step_state_round_trip():
    model, loss, batch = _toy()
    check_objective(loss)
    groups = {g["name"]: g for g in param_groups(model, 1e-4)}
    assert groups["decay_lr_x0.001"]["param_names"] == ["projection.linear.weight"]
    assert groups["no_decay_lr_x0.001"]["lr_scale"] == pytest.approx(1e-3)
    batch = loss.batch_transform(batch, model)
    out = model(batch["video"], focus=batch["focus"], nce_bank=batch["nce_bank"])
    assert out["feat"].shape == (24, 64) and out["bank_proj"].shape == (24, 6, 16)
    total, metrics = loss(out, batch)
    total.backward()
    assert model.projection.linear.weight.grad.abs().sum() > 0
    assert metrics["loss"] == pytest.approx(metrics["nce_loss"] + metrics["pred_loss"], rel=1e-5)
    assert loss.on_epoch_start(0, model)  # engine epoch 0 = epoch 1 >= warm-up 1: clusters the projected bank
    assert bool(loss.pcl.active)
    # the state (memory bank + prototypes) survives torch.save / weights_only load into a fresh objective
    buf = io.BytesIO()
    torch.save(loss.state_dict(), buf)
    state = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    _, fresh, _ = _toy()
    assert not bool(fresh.pcl.active)
    Method(model=model, objective=fresh, train_set=[]).load_objective_state(state)
    for k, v in loss.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[k], v, msg=k)
    with torch.no_grad():
        out = model(batch["video"], focus=batch["focus"], nce_bank=batch["nce_bank"])
        a, _ = loss.pcl(out, batch)
        b, _ = fresh.pcl(out, batch)  # all prototypes drawn (5 > k): the same loss
    assert a.item() == pytest.approx(b.item(), rel=1e-6) and a.item() > 0


def test_instance_features_fills_rows():
    model, _, batch = _toy(n_videos=2)
    feats = instance_features(model, [{"video": batch["video"][:, :3], "focus": batch["focus"][:, :3],
                                       "instance": batch["instance"][:, :3]}], n_instances=8)
    assert feats.shape == (8, 16)
    torch.testing.assert_close(feats[:6].norm(dim=1), torch.ones(6))
    assert feats[6:].abs().sum() == 0 and model.training
