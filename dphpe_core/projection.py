"""The public-gradient subspace of projected DP-SGD: Gram-matrix eigenbasis, refresh, projection.

    python -m pytest tests/test_projection.py

Per-sample gradients of m public crops (rows of X, m x p) define the second-moment matrix
M = X^T X / m. Its top-k eigenvectors are found exactly through the small m x m Gram matrix
K = X X^T: if K u = lambda u then v = X^T u / sqrt(lambda) is a unit eigenvector of X^T X with
the same eigenvalue; computed in float64 the basis is orthonormal to float precision, so the
projection g <- V V^T g is idempotent. The basis is rebuilt from the current model every
`subspace_every` steps (`Subspace.refresh`), from public data only: projecting the noisy
gradient is then post-processing and costs no privacy.

The basis takes k x p floats. When that exceeds the memory budget, the parameters are split
into layer groups (a stage, the stem, the head), each with its own basis of the largest rank
the budget allows; the record says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

BYTES_PER_FLOAT = 4


def layer_groups(names: list[str]) -> list[list[int]]:
    """Indices of `names` grouped by layer: each TinyViT stage, the stem, the head.

    >>> layer_groups(["backbone.stages.3.a", "backbone.stages.3.b", "head.x", "backbone.norm"])
    [[0, 1], [2], [3]]
    """
    keys: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        parts = name.split(".")
        key = ".".join(parts[:3]) if parts[:2] == ["backbone", "stages"] else ".".join(parts[:2])
        keys.setdefault(key, []).append(i)
    return list(keys.values())


@dataclass(frozen=True)
class Layout:
    """Which parameters share a basis, and each basis' rank."""
    groups: list[list[int]]
    ranks: list[int]
    note: str


def plan(names: list[str], sizes: list[int], *, k: int, m: int, budget_mb: float) -> Layout:
    """One basis of rank k when k x p floats fit in budget_mb, else per-layer-group bases."""
    p = sum(sizes)
    k = min(k, m)
    need_mb = k * p * BYTES_PER_FLOAT / 2**20
    if need_mb <= budget_mb:
        return Layout([list(range(len(names)))], [k], f"one basis of rank {k} over {p:,} parameters "
                                                        f"({need_mb:.0f} MB)")
    groups = layer_groups(names)
    rank = min(k, int(budget_mb * 2**20 / BYTES_PER_FLOAT / p))
    if rank < 1:
        raise ValueError(f"subspace_budget_mb={budget_mb}: too small for even one basis vector over {p:,} "
                         f"parameters ({p * BYTES_PER_FLOAT / 2**20:.1f} MB); raise it")
    return Layout(groups, [rank] * len(groups),
                  f"per-layer-group bases: {len(groups)} groups of rank {rank} each, because one basis of rank "
                  f"{k} over {p:,} parameters needs {need_mb:.0f} MB > subspace_budget_mb={budget_mb:g}")


def top_eigenbasis(x: torch.Tensor, rank: int, *, rtol: float = 1e-7) -> torch.Tensor:
    """Orthonormal (p, r) basis of the top-`rank` eigenvectors of x^T x, from the Gram matrix x x^T.

    Directions whose eigenvalue is below rtol x the largest are dropped (r <= rank). Everything
    runs in float64: the columns X^T u / sqrt(lambda) are then orthonormal to within about
    float64 epsilon x lambda_max / lambda <= 1e-16 / rtol, far below the float32 rounding of the
    result, so no QR step is needed (it took most of a refresh).
    """
    xd = x.double()
    evals, evecs = torch.linalg.eigh(xd @ xd.T)                  # ascending
    evals, evecs = evals.flip(0)[:rank], evecs.flip(1)[:, :rank]
    keep = evals > rtol * evals[0].clamp_min(1e-300)
    evals, evecs = evals[keep], evecs[:, keep]
    return (xd.T @ (evecs / evals.sqrt())).to(x.dtype)


class Subspace:
    """Bases for a list of parameters, rebuilt from per-sample public gradients."""

    def __init__(self, params: list[nn.Parameter], layout: Layout):
        self.params, self.layout = params, layout
        self.bases: list[torch.Tensor] = []
        self.kept: list[float] = []          # per projected step: |V V^T g| / |g|

    def refresh(self, per_sample_grads: list[torch.Tensor]) -> None:
        """New bases from per-sample gradients, one (m, *shape) tensor per parameter."""
        m = per_sample_grads[0].shape[0]
        self.bases = [top_eigenbasis(torch.cat([per_sample_grads[i].reshape(m, -1) for i in group], 1), rank)
                      for group, rank in zip(self.layout.groups, self.layout.ranks)]

    @property
    def rank(self) -> int:
        return sum(b.shape[1] for b in self.bases)

    def project_(self, grads: list[torch.Tensor]) -> float:
        """g <- V V^T g in place, group by group; returns and records the kept norm fraction."""
        if not self.bases:
            raise RuntimeError("the subspace has not been computed yet: call refresh first")
        before = after = 0.0
        for group, basis in zip(self.layout.groups, self.bases):
            flat = torch.cat([grads[i].reshape(-1) for i in group])
            proj = basis @ (basis.T @ flat)
            before += float(flat.square().sum())
            after += float(proj.square().sum())
            offset = 0
            for i in group:
                n = grads[i].numel()
                grads[i].copy_(proj[offset:offset + n].view_as(grads[i]))
                offset += n
        kept = math.sqrt(after / before) if before > 0 else 1.0
        self.kept.append(kept)
        return kept

    def summary(self) -> dict:
        return {"layout": self.layout.note, "groups": len(self.layout.groups), "rank": self.rank,
                "mean_kept_norm_fraction": sum(self.kept) / len(self.kept) if self.kept else None}
