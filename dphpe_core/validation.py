"""The checks every Config passes when it is built: plain types, the choices config.py names, the ranges
each number must lie in, and the combinations a method refuses; each refusal names the field, its value
and what was expected.

    python -c "from dphpe_core import make_config; make_config('smoke', epsilon=-1)"
"""

from __future__ import annotations

from dataclasses import fields

from .methods import METHODS as METHOD_TABLE


def validate(cfg, choices: dict[str, tuple]) -> None:
    """Refuse `cfg` (a Config) at its first invalid field, with what was expected; `choices`: each field
    with a fixed set of values, and those values (config.py's constants)."""
    def bad(name: str, expected: str) -> ValueError:
        return ValueError(f"config field {name}={getattr(cfg, name)!r} is invalid: expected {expected}")

    # types first: plain types only, so a typo such as epsilon="0.8" is caught here
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        expected = {"int": int, "float": (int, float), "str": str, "bool": bool}[f.type]
        if isinstance(value, bool) and f.type != "bool" or not isinstance(value, expected):
            raise bad(f.name, f"a value of type {f.type}")
    for name, options in choices.items():
        if getattr(cfg, name) not in options:
            raise bad(name, f"one of {list(options)}")
    for name in ("input_h", "input_w"):
        if getattr(cfg, name) < 32 or getattr(cfg, name) % 8:
            raise bad(name, "a multiple of 8, at least 32")
    for name in ("expected_batch_size", "epochs", "subspace_k", "subspace_m",
                 "blur_kernel_256", "pretrain_epochs", "pretrain_batch_size"):
        if getattr(cfg, name) < 1:
            raise bad(name, "an integer >= 1")
    for name in ("n_private", "n_public", "n_val", "lr_decay_epoch", "num_workers", "seed",
                 "data_seed", "max_physical_batch_size"):
        if getattr(cfg, name) < 0:
            raise bad(name, "an integer >= 0")
    if cfg.dataset == "synthpose" and min(cfg.n_private, cfg.n_val) < 1:
        raise bad("n_private" if cfg.n_private < 1 else "n_val", ">= 1 for SynthPose")
    if cfg.public_dataset == "synthpose" and cfg.n_public < 1:
        raise bad("n_public", ">= 1 for SynthPose")
    for name in ("simcc_split", "simcc_sigma_256", "blur_sigma_256", "lr", "clip_norm", "epsilon", "pretrain_lr",
                 "subspace_budget_mb"):
        if not getattr(cfg, name) > 0:
            raise bad(name, "a number > 0")
    if not 0 <= cfg.delta < 1:
        raise bad("delta", "0 (meaning 1/N_private) or a number in (0, 1/N_private)")
    for name in ("weight_decay", "public_weight_fdp", "public_weight_hybrid", "rotation_deg", "scale_jitter"):
        if getattr(cfg, name) < 0:
            raise bad(name, "a number >= 0")
    if not 0 <= cfg.subspace_interval <= 1:
        raise bad("subspace_interval", "a share of the run's steps in [0, 1] (0: a rebuild at every step)")
    if not 0 <= cfg.momentum < 1:
        raise bad("momentum", "a number in [0, 1)")
    if not 0 < cfg.lr_decay <= 1:
        raise bad("lr_decay", "a number in (0, 1]")
    replace_one = METHOD_TABLE[cfg.method].public_gradient and cfg.fdp_public != "public-set"
    if replace_one and cfg.accountant == "prv":      # it once became PLD without a word
        raise bad("accountant", f"'rdp' (the default) or 'pld' for method={cfg.method!r} with fdp_public={cfg.fdp_public!r}: "
                                f"its replace-one relation is accounted by dp-accounting's PLD accountant, and "
                                f"Opacus' PRV accountant knows add/remove only")
    if cfg.blurred_only and METHOD_TABLE[cfg.method].private:
        raise bad("blurred_only", "False unless the method is non-private (it is the non-private public-feature "
                                  "baseline)")
    if cfg.subspace_k > cfg.subspace_m:
        raise bad("subspace_k", f"<= subspace_m ({cfg.subspace_m}): the Gram matrix has rank <= m")
