"""The DP primer's worked numbers: how epsilon grows with steps, sampling rate and noise under each
accountant, and how much of a signal and of isotropic noise a public-gradient subspace keeps.

    python -c "from dphpe_core.primer import epsilon_grid; print(epsilon_grid().head())"
"""

from __future__ import annotations

import pandas as pd

from .accounting import epsilon_spent

PRIMER_Q, PRIMER_STEPS = 0.008, 1000          # the primer's reference point


def epsilon_grid(delta: float = 1e-5, accountants=("rdp", "prv")) -> pd.DataFrame:
    """Epsilon per accountant: at noise 1.0 over sampling rates and steps, and at PRIMER_Q and PRIMER_STEPS
    over noise multipliers."""
    rows = [dict(accountant=a, q=q, steps=steps, sigma=1.0) for a in accountants for q in (0.004, 0.008, 0.016)
            for steps in (50, 200, 500, 1000, 2000)]
    rows += [dict(accountant=a, q=PRIMER_Q, steps=PRIMER_STEPS, sigma=s) for a in accountants
             for s in (0.7, 1.0, 1.5, 2.0, 3.0)]
    return pd.DataFrame([dict(r, epsilon=epsilon_spent(noise_multiplier=r["sigma"], delta=delta, sample_rate=r["q"],
                                                       steps=r["steps"], accountant=r["accountant"])) for r in rows])


def epsilon_figure(eps: pd.DataFrame):
    """epsilon_grid drawn: against steps per sampling rate (noise 1.0), and against the noise multiplier."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    sns.lineplot(eps[eps.sigma == 1.0], x="steps", y="epsilon", hue="q", style="accountant", marker="o", ax=axes[0],
                 palette="crest")
    axes[0].set_title("noise multiplier 1.0")
    sns.lineplot(eps[(eps.q == PRIMER_Q) & (eps.steps == PRIMER_STEPS)], x="sigma", y="epsilon", style="accountant",
                 marker="o", ax=axes[1])
    axes[1].set(title=f"q = {PRIMER_Q:g}, {PRIMER_STEPS} steps", xlabel="noise multiplier", yscale="log")
    fig.tight_layout()
    return fig


def epsilon_numbers(eps: pd.DataFrame) -> dict:
    """The primer's reference point and the epsilon each accountant gives there at noise 1.0."""
    at = eps[(eps.q == PRIMER_Q) & (eps.steps == PRIMER_STEPS) & (eps.sigma == 1.0)].groupby("accountant").epsilon.first()
    return {"primer_q": PRIMER_Q, "primer_steps": PRIMER_STEPS, "primer_eps_rdp": float(at["rdp"]),
            "primer_eps_prv": float(at["prv"])}


def kept_shares(p: int = 500, rank: int = 10, ks=(1, 2, 5, 10, 20, 50), seed: int = 0) -> pd.DataFrame:
    """The share of the norm a k-dimensional public-gradient subspace keeps (projection.top_eigenbasis of 50
    public gradients spanning `rank` directions in `p` dimensions): of a signal in their span, and of
    isotropic noise of the signal's norm."""
    import torch

    from .projection import top_eigenbasis
    gen = torch.Generator().manual_seed(seed)
    directions = torch.linalg.qr(torch.randn(p, rank, generator=gen, dtype=torch.float64))[0]
    public_grads = torch.randn(50, rank, generator=gen, dtype=torch.float64) @ directions.T
    signal = torch.randn(rank, generator=gen, dtype=torch.float64) @ directions.T
    noise = torch.randn(p, generator=gen, dtype=torch.float64) * signal.norm() / p ** 0.5
    rows = []
    for k in ks:
        basis = top_eigenbasis(public_grads, k)
        rows += [dict(k=k, part=name, kept=float((basis @ (basis.T @ vec)).norm() / vec.norm()))
                 for name, vec in (("signal", signal), ("noise", noise))]
    return pd.DataFrame(rows)


def kept_numbers(kept: pd.DataFrame, k: int = 10) -> dict:
    """kept_shares at rank k, in percent."""
    at = kept[kept.k == k].set_index("part").kept
    return {"kept_signal": 100 * float(at["signal"]), "kept_noise": 100 * float(at["noise"])}
