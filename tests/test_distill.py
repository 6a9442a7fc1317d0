from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mclab import distill, models


def _logits(seed: int = 0, n: int = 6, k: int = 10) -> torch.Tensor:
    return 3 * torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


def _tiny_teacher() -> nn.Module:
    """A small stand-in teacher (a briefly trained small CNN would do; random weights suffice for the mechanics)."""
    return models.small_cnn(8, seed=7).eval()


def test_soften_is_tempered_softmax():
    z = torch.tensor([[2.0, 1.0, 0.0]])
    for T in (1.0, 2.0, 5.0):
        e = np.exp(np.array([2.0, 1.0, 0.0]) / T)
        assert np.allclose(distill.soften(z, T).numpy()[0], e / e.sum(), atol=1e-7)
    # higher temperature, flatter distribution (higher entropy)
    ent = [float(-(p * p.log()).sum()) for p in (distill.soften(z, T)[0] for T in (1, 2, 8))]
    assert ent == sorted(ent)


@pytest.mark.parametrize("T, alpha", [(1.0, 0.5), (4.0, 0.9), (3.0, 0.0)])
def test_target_distribution_mixes_soft_labels_and_one_hot(T, alpha):
    t, y = _logits(4), torch.tensor([0, 3, 9, 1, 1, 5])
    got = distill.target_distribution(t, y, temperature=T, alpha=alpha)
    p = np.exp(t.numpy() / T)
    p /= p.sum(1, keepdims=True)
    assert np.allclose(got.numpy(), alpha * p + (1 - alpha) * np.eye(10)[y.numpy()], atol=1e-6)
    assert torch.allclose(got.sum(1), torch.ones(6))
    with pytest.raises(ValueError, match="alpha=1.5"):
        distill.target_distribution(t, y, temperature=T, alpha=1.5)
    with pytest.raises(ValueError, match=r"labels \(5,\) must be \(N,\)"):
        distill.target_distribution(t, y[:5], temperature=T, alpha=alpha)


def test_soft_label_stats_by_hand():
    t = torch.tensor([[4.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    y = torch.tensor([0, 2])  # the teacher is right on the first, wrong on the second
    st = distill.soft_label_stats(t, y, 2.0)
    p = np.exp(t.numpy() / 2)
    p /= p.sum(1, keepdims=True)
    assert st.entropy_nats == pytest.approx(float(-(p * np.log(p)).sum(1).mean()), rel=1e-5)
    assert st.top_prob == pytest.approx(float(p.max(1).mean()), rel=1e-6)
    assert st.dark_mass == pytest.approx(float(1 - (p[0, 0] + p[1, 2]) / 2), rel=1e-6)
    assert st.as_dict()["temperature"] == 2.0
    flat = distill.soft_label_stats(t, y, 1000.0)  # a very high temperature: nearly uniform
    assert flat.entropy_nats == pytest.approx(math.log(3), rel=1e-4)
    assert flat.dark_mass == pytest.approx(2 / 3, rel=1e-3)
    with pytest.raises(ValueError, match="temperature=0"):
        distill.soft_label_stats(t, y, 0)


@pytest.mark.parametrize("T, alpha", [(1.0, 0.5), (4.0, 0.9), (2.5, 1.0), (3.0, 0.0)])
def test_loss_matches_hand_computation_and_kldivloss(T, alpha):
    s, t = _logits(0), _logits(1)
    y = torch.tensor([0, 3, 9, 1, 1, 5])
    got = distill.distillation_loss(s, t, y, temperature=T, alpha=alpha)
    # by hand: sum_c p_t (log p_t - log p_s), averaged over the batch, times T^2; plus plain cross-entropy
    pt, ps = np.exp(t.numpy() / T), np.exp(s.numpy() / T)
    pt, ps = pt / pt.sum(1, keepdims=True), ps / ps.sum(1, keepdims=True)
    kl = (pt * (np.log(pt) - np.log(ps))).sum(1).mean() * T * T
    p = np.exp(s.numpy()) / np.exp(s.numpy()).sum(1, keepdims=True)
    ce = -np.log(p[np.arange(6), y.numpy()]).mean()
    assert float(got) == pytest.approx(alpha * kl + (1 - alpha) * ce, rel=1e-5)
    # torch's own KLDivLoss (input: log-probabilities of the student, target: probabilities of the teacher)
    ref = nn.KLDivLoss(reduction="batchmean")(F.log_softmax(s / T, 1), F.softmax(t / T, 1)) * T * T
    assert float(got) == pytest.approx(float(alpha * ref + (1 - alpha) * F.cross_entropy(s, y)), rel=1e-5)


def test_soft_term_is_zero_when_student_equals_teacher_and_grads_stay_on_scale():
    t = _logits(2)
    y = t.argmax(1)
    assert float(distill.distillation_loss(t.clone(), t, y, temperature=3.0, alpha=1.0)) == pytest.approx(0, abs=1e-6)
    # with T^2 the soft gradient keeps its size as T grows (Hinton et al.: it would otherwise shrink as 1/T^2)
    s = _logits(3)
    norms = []
    for T in (4.0, 8.0, 16.0):
        x = s.clone().requires_grad_(True)
        distill.distillation_loss(x, t, y, temperature=T, alpha=1.0).backward()
        norms.append(float(x.grad.norm()))
    # T^2 * T(p_s - p_t)/T^2 tends to (s - t)/K: the norm settles; without T^2 it would fall 16x from T=4 to T=16
    assert max(norms) / min(norms) < 1.5, norms
    teacher = t.clone().requires_grad_(True)
    distill.distillation_loss(_logits(4).requires_grad_(True), teacher, y, temperature=2.0, alpha=0.5).backward()
    assert teacher.grad is None  # the teacher's logits get no gradient


@pytest.mark.parametrize("kw, match", [
    ({"temperature": 0}, r"temperature=0 must be a finite number > 0"),
    ({"temperature": -1.5}, "temperature=-1.5"),
    ({"temperature": float("inf")}, "temperature=inf"),
    ({"alpha": 1.2}, r"alpha=1.2 must be in \[0, 1\]"),
    ({"alpha": -0.1}, "alpha=-0.1"),
])
def test_bad_temperature_and_alpha(kw, match):
    with pytest.raises(ValueError, match=match):
        distill.DistillConfig(**kw)
    args = {"temperature": 2.0, "alpha": 0.5, **kw}
    with pytest.raises(ValueError, match=match):
        distill.distillation_loss(_logits(0), _logits(1), torch.zeros(6, dtype=torch.long), **args)


def test_bad_config_types_and_shapes():
    with pytest.raises(TypeError, match="train must be a TrainConfig"):
        distill.DistillConfig(train={"epochs": 1})
    with pytest.raises(ValueError, match="n_per_class=0"):
        distill.DistillConfig(n_per_class=0)
    with pytest.raises(ValueError, match=r"\(6, 10\) and teacher logits \(6, 5\)"):
        distill.distillation_loss(_logits(0), _logits(1, k=5), torch.zeros(6, dtype=torch.long), temperature=2,
                                  alpha=0.5)
    with pytest.raises(ValueError, match="weight=-1"):
        distill.FeatureConfig("a", "b", weight=-1)


def test_distill_trains_the_student_in_place_and_leaves_the_teacher_frozen():
    teacher = _tiny_teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = models.small_cnn(4, seed=0)
    s0 = {k: v.clone() for k, v in student.state_dict().items()}
    cfg = distill.DistillConfig(temperature=2.0, alpha=0.7, n_per_class=5,
                                train=models.TrainConfig(epochs=1, batch_size=16, progress=False))
    res = distill.distill_(student, teacher, cfg)
    assert res.teacher_unchanged and not teacher.training
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert all(p.requires_grad for p in teacher.parameters())  # restored as it was
    assert any(not torch.equal(s0[k], v) for k, v in student.state_dict().items())  # the student learned
    assert len(res.train.loss) == 1 and math.isfinite(res.train.loss[0]) and not student.training
    assert res.as_dict()["config"]["temperature"] == 2.0


def test_alpha_zero_is_training_from_scratch():
    """alpha = 0 leaves only the hard-label term, so distillation reproduces plain training exactly."""
    tc = models.TrainConfig(epochs=1, batch_size=32, progress=False, seed=3)
    a, b = models.small_cnn(4, seed=1), models.small_cnn(4, seed=1)
    distill.distill_(a, _tiny_teacher(), distill.DistillConfig(alpha=0.0, train=tc, n_per_class=6))
    models.train(b, tc, data=distill.training_subset(6, 32))
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(va.float(), vb.float(), atol=1e-6), k


def test_feature_distillation_trains_a_projection():
    teacher = models.resnet18_digits(seed=0).eval()
    student = models.small_cnn(4, seed=0)
    cfg = distill.DistillConfig(features=distill.FeatureConfig(student_layer="6", teacher_layer="layer2", weight=0.5),
                                n_per_class=3, train=models.TrainConfig(epochs=1, batch_size=16, progress=False))
    res = distill.distill_(student, teacher, cfg)
    assert res.teacher_unchanged and math.isfinite(res.train.loss[0])
    assert student(torch.zeros(1, 1, 32, 32)).shape == (1, 10)  # the projection is not part of the student
    assert not any(n.startswith("projection") for n, _ in student.named_parameters())
    with pytest.raises(ValueError, match=r"teacher layer 'layer9' does not exist.*layer"):
        distill.distill_(models.small_cnn(4), teacher, distill.DistillConfig(
            features=distill.FeatureConfig("6", "layer9"), n_per_class=1,
            train=models.TrainConfig(epochs=1, progress=False)))


def test_compare_pairs_seeds_and_reports_a_verdict():
    data = [(torch.randn(1, 32, 32), torch.tensor(i % 10)) for i in range(30)]
    cfg = distill.DistillConfig(temperature=2.0, alpha=0.5, n_per_class=3,
                                train=models.TrainConfig(epochs=1, batch_size=32, progress=False))
    cmp = distill.compare(lambda seed: models.small_cnn(4, seed=seed), _tiny_teacher(), cfg, seeds=(0, 1, 2),
                          data=data, progress=False)
    assert cmp.seeds == [0, 1, 2] and len(cmp.scratch) == len(cmp.distilled) == 3 and cmp.n_eval == 30
    d = np.subtract(cmp.distilled, cmp.scratch)
    assert cmp.gain.mean == pytest.approx(d.mean()) and cmp.gain.n == 3
    assert cmp.verdict.startswith("significant" if cmp.gain.significant else "not significant")
    table = cmp.table()
    assert list(table.index) == ["teacher", "student from scratch", "distilled student"]
    assert table.loc["distilled student", "accuracy mean [%]"] == pytest.approx(100 * np.mean(cmp.distilled))
    with pytest.raises(ValueError, match="at least 2 distinct seeds"):
        distill.compare(lambda s: models.small_cnn(4, seed=s), _tiny_teacher(), cfg, seeds=(0,))


def test_soft_label_figure_and_sliders():
    import matplotlib

    from mclab.lab import widgets

    matplotlib.use("Agg")
    t = _logits(5, n=8)
    y = t.argmax(1)  # the teacher is right: its wrong-class mass grows with T
    lo, hi = (widgets.draw_soft_labels(t, y, temperature=T, alpha=0.5) for T in (1.0, 8.0))
    assert lo["entropy_nats"] < hi["entropy_nats"] < math.log(10) and lo["dark_mass"] < hi["dark_mass"]
    assert lo["top_prob"] == pytest.approx(float(distill.soften(t, 1.0).max(1).values.mean()))
    box = widgets.soft_label_sliders(t, y, torch.zeros(8, 1, 8, 8), temperature=2.0, alpha=0.3)
    t_slider, a_slider = box.children[0].children
    assert (t_slider.value, a_slider.value) == pytest.approx((2.0, 0.3)) and not t_slider.continuous_update
    t_slider.value = 5.0  # redraws into the Output widget
    with pytest.raises(ValueError, match="temperature=0"):
        widgets.draw_soft_labels(t, y, temperature=0)
    with pytest.raises(ValueError, match="alpha=2"):
        widgets.soft_label_sliders(t, y, alpha=2)
