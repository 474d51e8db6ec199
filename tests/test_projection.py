import pytest
import torch

from dphpe_core.projection import Subspace, layer_groups, plan, top_eigenbasis


def _grads(m=12, p=200, rank=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, p, generator=g,
                                                                              dtype=torch.float64)


def test_basis_spans_the_top_eigenvectors_of_the_second_moment_matrix():
    x = _grads(m=12, p=60, rank=12)
    v = top_eigenbasis(x, 4)
    evals, evecs = torch.linalg.eigh(x.T @ x)          # brute force on the p x p matrix
    top = evecs[:, -4:]
    assert v.shape == (60, 4)
    assert torch.allclose(v.T @ v, torch.eye(4, dtype=v.dtype), atol=1e-10)
    assert torch.allclose(v @ v.T, top @ top.T, atol=1e-8)   # same subspace


def test_float32_basis_is_orthonormal_to_float_precision_when_eigenvalues_spread_widely():
    g = torch.Generator().manual_seed(2)
    scales = torch.logspace(0, -3, 40, dtype=torch.float64)     # eigenvalues over six decades
    x = (torch.randn(40, 40, generator=g, dtype=torch.float64) * scales) @ torch.linalg.qr(
        torch.randn(5000, 40, generator=g, dtype=torch.float64))[0].T
    v = top_eigenbasis(x.float(), 40)
    assert v.dtype == torch.float32 and v.shape[1] >= 30
    assert (v.T @ v - torch.eye(v.shape[1])).abs().max() < 1e-5


def test_rank_deficient_gradients_give_a_smaller_basis():
    assert top_eigenbasis(_grads(m=12, p=200, rank=5), 10).shape == (200, 5)


def _subspace(sizes=(30, 50, 20), names=("backbone.stages.3.a", "backbone.stages.3.b", "head.w"), k=6, m=10,
              budget_mb=1.0):
    params = [torch.nn.Parameter(torch.zeros(n, dtype=torch.float64)) for n in sizes]
    layout = plan(list(names), list(sizes), k=k, m=m, budget_mb=budget_mb)
    s = Subspace(params, layout)
    g = torch.Generator().manual_seed(1)
    s.refresh([torch.randn(m, n, generator=g, dtype=torch.float64) for n in sizes])
    return s


@pytest.mark.parametrize("budget_mb", [1.0, 6 * 100 * 4 / 2**20 * 0.6])
def test_projection_is_idempotent_and_lands_in_the_span(budget_mb):
    s = _subspace(budget_mb=budget_mb)
    g = [torch.randn(n, dtype=torch.float64) for n in (30, 50, 20)]
    before = torch.cat(g).clone()
    kept = s.project_(g)
    once = torch.cat(g).clone()
    s.project_(g)
    assert torch.allclose(torch.cat(g), once, atol=1e-12)                       # P P g = P g
    assert 0 < kept < 1 and kept == pytest.approx(float(once.norm() / before.norm()))
    offset = 0
    for group, basis in zip(s.layout.groups, s.bases):
        n = sum((30, 50, 20)[i] for i in group)
        part = once[offset:offset + n]
        assert torch.allclose(basis @ (basis.T @ part), part, atol=1e-12)       # in span(V)
        assert torch.allclose(basis.T @ (before[offset:offset + n] - part), torch.zeros(basis.shape[1],
                                                                                        dtype=part.dtype), atol=1e-10)
        offset += n
    assert s.summary()["mean_kept_norm_fraction"] == pytest.approx(sum(s.kept) / 2)


def test_over_budget_uses_per_layer_group_bases_and_says_so():
    one = plan(["backbone.stages.3.a", "head.w"], [1000, 1000], k=100, m=100, budget_mb=1.0)
    assert one.groups == [[0, 1]] and one.ranks == [100] and "one basis" in one.note
    split = plan(["backbone.stages.3.a", "head.w"], [1000, 1000], k=100, m=100, budget_mb=0.4)
    assert split.groups == [[0], [1]] and split.ranks == [52, 52] and "per-layer-group" in split.note
    assert 52 * 2000 * 4 <= 0.4 * 2**20 < 53 * 2000 * 4
    with pytest.raises(ValueError, match="subspace_budget_mb"):
        plan(["head.w"], [10**6], k=10, m=10, budget_mb=1.0)


def test_layer_groups_follow_stages_and_the_head():
    names = ["backbone.stem.conv", "backbone.stages.2.x", "backbone.stages.3.y", "backbone.stages.3.z", "head.a"]
    assert layer_groups(names) == [[0], [1], [2, 3], [4]]


def test_projecting_before_a_refresh_is_an_error():
    s = Subspace([torch.nn.Parameter(torch.zeros(3))], plan(["head.w"], [3], k=1, m=1, budget_mb=1.0))
    with pytest.raises(RuntimeError, match="refresh"):
        s.project_([torch.ones(3)])
