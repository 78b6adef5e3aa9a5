"""Each loss computed on hand-made vectors equals its formula; teacher-score checks; InfoNCE across 2 DDP ranks;
every twotower/conf/loss/ file instantiates."""

import math
import os
import re
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from twotower.conf import CONF_DIR
from twotower.losses import CombinedLoss, ContrastiveLoss, CosineLoss, DistillKLLoss, MarginMSELoss, TripletLoss


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


q = unit([1.0, 0.0], [0.0, 1.0])
p = unit([1.0, 1.0], [0.0, 1.0])  # cos = 0.7071 and 1
n = unit([1.0, 0.0], [1.0, 0.0]).unsqueeze(1)  # cos = 1 and 0


def test_triplet_loss_is_the_hinge_on_cosines():
    c = math.sqrt(0.5)
    expected = (max(0, 0.2 - c + 1.0) + max(0, 0.2 - 1.0 + 0.0)) / 2
    assert TripletLoss(margin=0.2)(q, p, n).item() == pytest.approx(expected, abs=1e-6)


def test_cosine_loss_matches_torch_cosine_embedding_loss():
    ours = CosineLoss(margin=0.1)(q, p, n)
    x1 = torch.cat([q, q])
    x2 = torch.cat([p, n[:, 0]])
    target = torch.tensor([1, 1, -1, -1])
    assert ours.item() == pytest.approx(F.cosine_embedding_loss(x1, x2, target, margin=0.1).item(), abs=1e-6)


def test_contrastive_loss_uses_in_batch_and_hard_negatives():
    tau = 0.5
    loss = ContrastiveLoss(temperature=tau)(q, p, n)
    candidates = torch.cat([p, n[:, 0]])  # 2 positives + 2 hard negatives per query
    logits = q @ candidates.T / tau
    expected = -(logits[0, 0] - logits[0].logsumexp(0) + logits[1, 1] - logits[1].logsumexp(0)) / 2
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_contrastive_loss_without_in_batch_negatives():
    tau = 0.1
    loss = ContrastiveLoss(temperature=tau, in_batch=False)(q, p, n)
    pos, neg = (q * p).sum(-1), (q * n[:, 0]).sum(-1)
    expected = (-(pos / tau) + torch.logaddexp(pos / tau, neg / tau)).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_bad_temperature_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        ContrastiveLoss(temperature=0)


# --- teacher scores and the distillation losses ---------------------------------------------------------------

CONF_LOSS = CONF_DIR / "loss"

# Two rows, two hard negatives each, in 2-d: every dot product is readable by hand.
q2 = unit([1.0, 0.0], [0.0, 1.0])
p2 = unit([1.0, 1.0], [0.0, 1.0])  # q·p = 0.7071, 1
n2 = torch.stack(
    [
        unit([1.0, 0.0], [0.0, 1.0]),  # row 0: q·n = 1, 0
        unit([1.0, 0.0], [1.0, 1.0]),
    ]
)  # row 1: q·n = 0, 0.7071
t2 = torch.tensor([[0.9, 0.5, 0.1], [0.8, 0.7, 0.3]])  # teacher: [positive, negative_1, negative_2]
S2 = [[math.sqrt(0.5), 1.0, 0.0], [1.0, 0.0, math.sqrt(0.5)]]  # the student's scores, written out


def leaves(*tensors):
    return [t.clone().requires_grad_() for t in tensors]


def test_margin_mse_is_the_squared_error_of_margins():
    for scale in (1.0, 3.0):
        terms = [
            ((scale * S2[i][0] - scale * S2[i][j]) - (t2[i, 0].item() - t2[i, j].item())) ** 2
            for i in range(2)
            for j in (1, 2)
        ]
        loss = MarginMSELoss(scale=scale)(q2, p2, n2, teacher=t2)
        assert loss.item() == pytest.approx(sum(terms) / len(terms), abs=1e-6)


def test_margin_mse_ignores_a_per_row_shift_of_the_teacher():
    shifted = t2 + torch.tensor([[5.0], [-2.0]])
    expected = MarginMSELoss()(q2, p2, n2, t2).item()
    assert MarginMSELoss()(q2, p2, n2, shifted).item() == pytest.approx(expected, abs=1e-5)


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


@pytest.mark.parametrize("tau_s, tau_t", [(0.05, 0.05), (0.5, 0.2), (1.0, 2.0)])
def test_kl_is_the_mean_row_kl_of_teacher_to_student(tau_s, tau_t):
    rows = []
    for i in range(2):
        pt = softmax([t / tau_t for t in t2[i].tolist()])
        ps = softmax([s / tau_s for s in S2[i]])
        rows.append(sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps)))
    loss = DistillKLLoss(temperature=tau_s, teacher_temperature=tau_t)(q2, p2, n2, teacher=t2)
    assert loss.item() == pytest.approx(sum(rows) / 2, rel=1e-4, abs=1e-6)


def test_kl_is_zero_when_the_student_matches_the_teacher_up_to_a_shift():
    teacher = torch.tensor(S2) + torch.tensor([[0.3], [-0.1]])
    assert DistillKLLoss(0.1, 0.1)(q2, p2, n2, teacher).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_gradient_on_the_scores_is_the_probability_gap_over_tau():
    # dL/ds_ij = (P_s(ij) − P_t(ij)) / (B τ_s): the scale of InfoNCE's gradient, hence no τ² factor.
    tau = 0.5
    q, p, n = leaves(q2, p2, n2)
    DistillKLLoss(tau, tau)(q, p, n, t2).backward()
    for i in range(2):
        ps, pt = softmax([s / tau for s in S2[i]]), softmax([t / tau for t in t2[i].tolist()])
        grads = [p.grad[i] @ q2[i]] + [n.grad[i, j] @ q2[i] for j in range(2)]  # c's gradient is g_ij · q_i
        for j in range(3):
            assert grads[j].item() == pytest.approx((ps[j] - pt[j]) / (2 * tau), abs=1e-5)


def test_combined_is_the_weighted_sum_and_keeps_its_parts():
    contrastive, kl = ContrastiveLoss(temperature=0.5), DistillKLLoss(0.5, 0.5)
    loss = CombinedLoss(losses={"contrastive": contrastive, "kl": kl}, weights={"contrastive": 1.0, "kl": 0.25})
    total = loss(q2, p2, n2, teacher=t2)
    c, k = contrastive(q2, p2, n2).item(), kl(q2, p2, n2, t2).item()
    assert total.item() == pytest.approx(c + 0.25 * k, abs=1e-6)
    assert loss.last_parts == pytest.approx({"contrastive": c, "kl": k}, abs=1e-6)
    assert all(type(v) is float for v in loss.last_parts.values())
    assert loss.needs_teacher


def test_combined_weights_default_to_one_and_unknown_names_are_refused():
    loss = CombinedLoss(losses={"triplet": TripletLoss(), "cosine": CosineLoss()}, weights={"triplet": 2.0})
    assert loss.weights == {"triplet": 2.0, "cosine": 1.0}
    assert not loss.needs_teacher
    assert loss(q2, p2, n2).item() == pytest.approx(
        2 * TripletLoss()(q2, p2, n2).item() + CosineLoss()(q2, p2, n2).item(), abs=1e-6
    )
    with pytest.raises(ValueError, match="kl"):
        CombinedLoss(losses={"triplet": TripletLoss()}, weights={"kl": 1.0})


@pytest.mark.parametrize(
    "loss",
    [ContrastiveLoss(), ContrastiveLoss(in_batch=False), CosineLoss(), TripletLoss()],
    ids=lambda m: type(m).__name__,
)
def test_losses_without_a_teacher_ignore_teacher_scores(loss):
    assert not loss.needs_teacher
    garbage = torch.full((7, 1), float("nan"))
    assert loss(q2, p2, n2, teacher=garbage).item() == loss(q2, p2, n2).item()


TEACHER_LOSSES = [MarginMSELoss(), DistillKLLoss()]


@pytest.mark.parametrize("loss", TEACHER_LOSSES, ids=lambda m: m.name)
def test_missing_teacher_scores_are_refused_by_name(loss):
    message = rf"loss={loss.name} needs teacher scores: set data\.prepare\.teacher"
    with pytest.raises(ValueError, match=message):
        loss(q2, p2, n2)


@pytest.mark.parametrize("loss", TEACHER_LOSSES, ids=lambda m: m.name)
def test_distillation_without_hard_negatives_is_refused(loss):
    with pytest.raises(ValueError, match=rf"loss={loss.name} needs at least one hard negative"):
        loss(q2, p2, n2[:, :0], t2[:, :1])


def test_combined_names_the_part_that_needs_teacher_scores():
    loss = instantiate(OmegaConf.load(CONF_LOSS / "combined.yaml"))
    with pytest.raises(ValueError, match=r"loss=combined \(its part kl\) needs teacher scores"):
        loss(q2, p2, n2)


def re_shape(shape):
    return re.escape(str(tuple(shape)))


@pytest.mark.parametrize("loss", TEACHER_LOSSES, ids=lambda m: m.name)
@pytest.mark.parametrize("shape", [(2, 2), (2, 4), (3, 3), (6,)])
def test_teacher_scores_of_the_wrong_shape_are_refused(loss, shape):
    with pytest.raises(ValueError, match=r"shape \(B, 1 \+ k\) = \(2, 3\).*got " + re_shape(shape)):
        loss(q2, p2, n2, torch.zeros(shape))


@pytest.mark.parametrize("loss", TEACHER_LOSSES, ids=lambda m: m.name)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_teacher_scores_name_the_first_bad_row(loss, bad):
    q, p = unit(*[[1.0, float(i)] for i in range(5)]), unit(*[[float(i), 1.0] for i in range(5)])
    n = n2[:1].repeat(5, 1, 1)
    teacher = torch.rand(5, 3)
    teacher[3, 2] = bad
    teacher[4, 0] = bad
    with pytest.raises(ValueError, match=rf"loss={loss.name}: teacher scores hold NaN/inf in row 3 .*2 bad row"):
        loss(q, p, n, teacher)


@pytest.mark.parametrize(
    "loss",
    [
        ContrastiveLoss(),
        ContrastiveLoss(in_batch=False),
        CosineLoss(),
        TripletLoss(),
        MarginMSELoss(scale=2.0),
        DistillKLLoss(),
        CombinedLoss({"contrastive": ContrastiveLoss(), "kl": DistillKLLoss()}),
    ],
    ids=lambda m: type(m).__name__,
)
def test_gradients_reach_every_embedding_and_not_the_teacher(loss):
    torch.manual_seed(0)
    q, p, n = leaves(
        F.normalize(torch.randn(4, 8), dim=-1),
        F.normalize(torch.randn(4, 8), dim=-1),
        F.normalize(torch.randn(4, 3, 8), dim=-1),
    )
    teacher = torch.rand(4, 4, requires_grad=True)
    loss(q, p, n, teacher=teacher).backward()
    for t in (q, p, n):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    assert teacher.grad is None


def test_teacher_scores_follow_the_student_dtype():
    teacher = t2.double()
    assert MarginMSELoss()(q2, p2, n2, teacher).dtype == torch.float32
    assert DistillKLLoss()(q2, p2, n2, teacher.half()).dtype == torch.float32


@pytest.mark.parametrize("path", sorted(CONF_LOSS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_loss_config_instantiates_and_runs(path):
    loss = instantiate(OmegaConf.load(path))
    assert isinstance(loss, nn.Module)
    assert OmegaConf.load(path)._target_.startswith("twotower.losses.")
    if getattr(loss, "needs_teacher_vectors", False) or path.stem == "distill":
        vectors = {"query": q2.detach(), "documents": torch.cat([p2, n2.reshape(-1, n2.shape[-1])]).detach()}
        value = loss(q2, p2, n2, teacher=t2, teacher_vectors=vectors)
    else:
        value = loss(q2, p2, n2, teacher=t2)
    assert value.ndim == 0 and torch.isfinite(value)


def test_the_distillation_configs_build_the_documented_classes():
    assert type(instantiate(OmegaConf.load(CONF_LOSS / "margin_mse.yaml"))) is MarginMSELoss
    assert type(instantiate(OmegaConf.load(CONF_LOSS / "kl.yaml"))) is DistillKLLoss
    combined = instantiate(OmegaConf.load(CONF_LOSS / "combined.yaml"))
    assert type(combined) is CombinedLoss
    assert {k: type(v) for k, v in combined.losses.items()} == {"contrastive": ContrastiveLoss, "kl": DistillKLLoss}
    assert combined.weights == {"contrastive": 1.0, "kl": 1.0}


# --- InfoNCE across DDP ranks ----------------------------------------------------------------------------------

TAU, K, D = 0.1, 2, 5
# per-rank batch sizes and k; "unequal" is a short last batch, "no_negatives" is data.prepare.num_negatives=0
DDP_CASES = {"equal": ((3, 3), K), "unequal": ((3, 2), K), "no_negatives": ((2, 2), 0)}


def global_batch(b: int, k: int = K):
    g = torch.Generator().manual_seed(b)
    return (
        F.normalize(torch.randn(b, D, generator=g), dim=-1),
        F.normalize(torch.randn(b, D, generator=g), dim=-1),
        F.normalize(torch.randn(b, k, D, generator=g), dim=-1),
    )


def rows_of(sizes, rank):
    lo = sum(sizes[:rank])
    return slice(lo, lo + sizes[rank])


def linear_inputs(b: int):
    g = torch.Generator().manual_seed(100 + b)
    return torch.randn(b, D, generator=g), torch.randn(b, D, generator=g), torch.randn(b, K, D, generator=g)


def linear_embed(model, xq, xp, xn):
    b = xq.shape[0]
    out = F.normalize(model(torch.cat([xq, xp, xn.reshape(b * K, D)])), dim=-1)  # one forward for DDP
    return out[:b], out[b : 2 * b], out[2 * b :].reshape(b, K, D)


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        results = {}
        for case, (sizes, k) in DDP_CASES.items():
            q, p, n = leaves(*(t[rows_of(sizes, rank)] for t in global_batch(sum(sizes), k)))
            loss = ContrastiveLoss(temperature=TAU)(q, p, n)
            loss.backward()
            local = ContrastiveLoss(temperature=TAU, gather=False)(q, p, n)
            results[case] = {"loss": loss.item(), "grads": [q.grad, p.grad, n.grad], "local": local.item()}
        # End to end: a shared linear tower under DDP gets the single-process parameter gradient.
        sizes = DDP_CASES["equal"][0]
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(nn.Linear(D, D, bias=False))
        x = [t[rows_of(sizes, rank)] for t in linear_inputs(sum(sizes))]
        ContrastiveLoss(temperature=TAU)(*linear_embed(model, *x)).backward()
        results["ddp_weight_grad"] = model.module.weight.grad
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_contrastive_gathers_across_two_ddp_ranks(tmp_path):
    """On each rank r: L_r = mean over its queries of InfoNCE against all ranks' candidates, and the gradient on
    its embeddings is that of Σ_s L_s (the gather's backward sums over ranks). With equal B: mean_r L_r is the
    single-process loss L over the concatenated batch and each rank's gradient is W·∂L/∂(its rows), which
    DDP's 1/W gradient average turns into the single-process parameter gradient exactly."""
    world = 2
    ctx = mp.spawn(_ddp_worker, args=(world, free_port(), str(tmp_path)), nprocs=world, join=False)
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                proc.kill()
            pytest.fail("DDP workers did not finish within 120 s")
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    assert not dist.is_initialized()  # the reference below is the plain single-process loss

    for case, (sizes, k) in DDP_CASES.items():
        Q, P, N = leaves(*global_batch(sum(sizes), k))
        logits = Q @ torch.cat([P, N.reshape(-1, D)]).T / TAU  # candidates [P_all; N_all], target = global row
        ce = F.cross_entropy(logits, torch.arange(sum(sizes)), reduction="none")
        per_rank = [ce[rows_of(sizes, r)].mean() for r in range(world)]
        sum(per_rank).backward()
        for r in range(world):
            assert results[r][case]["loss"] == pytest.approx(per_rank[r].item(), abs=1e-5), (case, r)
            for got, ref in zip(results[r][case]["grads"], (Q.grad, P.grad, N.grad)):
                torch.testing.assert_close(got, ref[rows_of(sizes, r)], atol=1e-5, rtol=1e-4)
            local = ContrastiveLoss(temperature=TAU)(*(t[rows_of(sizes, r)].detach() for t in (Q, P, N)))
            assert results[r][case]["local"] == pytest.approx(local.item(), abs=1e-5)

        if case == "equal":  # the same, stated against the single-process loss over the concatenated batch
            Q1, P1, N1 = leaves(*global_batch(sum(sizes), k))
            single = ContrastiveLoss(temperature=TAU)(Q1, P1, N1)
            single.backward()
            assert sum(res[case]["loss"] for res in results) / world == pytest.approx(single.item(), abs=1e-5)
            for r in range(world):
                for got, ref in zip(results[r][case]["grads"], (Q1.grad, P1.grad, N1.grad)):
                    torch.testing.assert_close(got, world * ref[rows_of(sizes, r)], atol=1e-5, rtol=1e-4)

    torch.manual_seed(0)
    model = nn.Linear(D, D, bias=False)
    ContrastiveLoss(temperature=TAU)(*linear_embed(model, *linear_inputs(sum(DDP_CASES["equal"][0])))).backward()
    for r in range(world):
        torch.testing.assert_close(results[r]["ddp_weight_grad"], model.weight.grad, atol=1e-5, rtol=1e-4)


def test_embedding_mse_regresses_onto_the_teachers_vectors():
    from twotower.losses import EmbeddingMSELoss

    torch.manual_seed(0)
    unit = lambda x: torch.nn.functional.normalize(x, dim=-1)  # noqa: E731
    q, p, n = unit(torch.randn(2, 4)), unit(torch.randn(2, 4)), unit(torch.randn(2, 3, 4))
    tq, td = unit(torch.randn(2, 4)), unit(torch.randn(8, 4))
    docs = torch.cat([p, n.reshape(-1, 4)])
    expected = (
        sum(((q[i] - tq[i]) ** 2).sum() for i in range(2)) / 2
        + sum(((docs[i] - td[i]) ** 2).sum() for i in range(8)) / 8
    ) / 2
    loss = EmbeddingMSELoss()(q, p, n, teacher_vectors={"query": tq, "documents": td})
    assert torch.isclose(loss, expected)
    assert EmbeddingMSELoss()(tq, td[:2], td[2:].reshape(2, 3, 4), teacher_vectors={"query": tq, "documents": td}) == 0
    with pytest.raises(ValueError, match="output width"):
        EmbeddingMSELoss()(q, p, n, teacher_vectors={"query": tq[:, :3], "documents": td})
    with pytest.raises(ValueError, match="data.teacher_vectors=true"):
        EmbeddingMSELoss()(q, p, n)


def test_contrastive_loss_is_sentence_transformers_mnrl_on_the_same_vectors():
    """Our InfoNCE is sentence-transformers' MultipleNegativesRankingLoss (scale = 1/temperature): the same
    value and the same gradients on every query, positive and hard negative (issue 20: the two recipes differ
    in their data and settings, never in the loss)."""
    pytest.importorskip("sentence_transformers")
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(0)
    b, k, d = 6, 3, 16
    # Tower outputs before their L2 normalisation (our towers end with it, as all-MiniLM-L6-v2 ends with Normalize).
    ours_raw = [torch.randn(*shape, d, requires_grad=True) for shape in ((b,), (b,), (b, k))]
    theirs_raw = [t.detach().clone().requires_grad_() for t in ours_raw]
    q, p, n = (F.normalize(t, dim=-1) for t in ours_raw)
    ours = ContrastiveLoss(temperature=0.05)(q, p, n)
    columns = [F.normalize(t, dim=-1) for t in theirs_raw[:2]] + list(F.normalize(theirs_raw[2], dim=-1).unbind(1))
    mnrl = MultipleNegativesRankingLoss(nn.Identity(), scale=20.0).compute_loss_from_embeddings(columns, None)
    (ours + mnrl).backward()

    assert ours.item() == pytest.approx(mnrl.item(), rel=1e-5)
    for mine, theirs in zip(ours_raw, theirs_raw):
        assert torch.allclose(mine.grad, theirs.grad, atol=1e-6)
