import hashlib
import json
import os
import subprocess
import sys

import pytest

from dphpe_core import PRESETS, make_config
from dphpe_core.config import Config, field_names


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_build_and_name_themselves(preset):
    cfg = make_config(preset)
    assert cfg.preset == preset
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_paper_preset_matches_the_paper():
    cfg = make_config("paper")
    assert (cfg.input_h, cfg.input_w, cfg.model_size, cfg.dataset) == (256, 192, "5m", "mpii")
    assert (cfg.expected_batch_size, cfg.epochs, cfg.lr, cfg.lr_decay_epoch, cfg.lr_decay) == (32, 25, 1e-3, 20, 0.1)
    assert (cfg.rotation_deg, cfg.scale_jitter) == (30.0, 0.25)
    # the paper's delta 1/22000 is above 1/N (N = 22,246): the preset derives delta < 1/N instead
    assert cfg.delta == 0.0
    assert (cfg.blur_kernel, cfg.blur_sigma, cfg.simcc_sigma) == (25, 10.0, 3.0)


def test_derived_values_scale_with_input_size():
    cfg = make_config("embedded", input_h=128, input_w=96)
    assert cfg.simcc_sigma == pytest.approx(1.5)
    assert cfg.blur_sigma == pytest.approx(5.0)
    assert make_config("embedded").blur_kernel == 7       # 25 x 64/256 = 6.25 -> 6 -> odd: 7
    assert cfg.blur_kernel % 2 == 1 and 11 <= cfg.blur_kernel <= 13


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'fast'.*embedded.*paper.*smoke"):
        make_config("fast")


def test_unknown_field_is_named_with_a_suggestion():
    with pytest.raises(ValueError, match=r"'epsilonn' \(did you mean 'epsilon'\?\).*valid fields are"):
        make_config("smoke", epsilonn=1.0)


@pytest.mark.parametrize("field, value, expected", [
    ("epsilon", 0.0, "> 0"), ("epsilon", "0.8", "type float"), ("delta", 1.5, "1/N_private"),
    ("method", "dp-sgd", "nonprivate"), ("strategy", "frozen", "finetune"), ("input_h", 100, "multiple of 8"),
    ("clip_norm", -1.0, "> 0"), ("expected_batch_size", 0, ">= 1"), ("subspace_k", 500, "subspace_m"),
    ("augment", 1, "type bool"), ("device", "tpu", "auto"), ("n_private", 0, "SynthPose"),
    ("subspace_interval", 1.5, "share of the run"),
])
def test_invalid_values_are_refused_naming_the_field(field, value, expected):
    with pytest.raises(ValueError, match=rf"{field}=.*invalid.*{expected}"):
        make_config("smoke", **{field: value})


def test_configs_are_frozen_and_replace_validates():
    cfg = make_config("smoke")
    with pytest.raises(AttributeError):
        cfg.epsilon = 2.0
    assert cfg.replace(epsilon=0.4).epsilon == 0.4
    with pytest.raises(ValueError, match="unknown config field"):
        cfg.replace(sigma=1.0)


def test_hash_is_canonical_json_sha256_of_result_fields():
    """Hand-built blob of a DP-SGD config: every result field, the subspace, public-gradient and blur
    fields it never reads at their fixed values, subspace_interval (added since, unread) and optimizer and
    momentum (added since, at the value every earlier record held) left out, and the retired
    subspace_every at its one value."""
    cfg = make_config("embedded", method="dpsgd", epsilon=0.4, subspace_k=7, subspace_interval=0.5,
                      public_weight_fdp=9.0, blur_sigma_256=3.0)
    d = {k: v for k, v in cfg.to_dict().items()
         if k not in ("data_root", "public_root", "cache_dir", "results_dir", "device", "num_workers",
                      "max_physical_batch_size", "subspace_interval", "optimizer", "momentum")}
    d.update(subspace_k=50, subspace_m=100, subspace_budget_mb=1024.0, public_weight_fdp=0.3, public_weight_hybrid=1.0,
             fdp_public="independent", blur_kernel_256=25, blur_sigma_256=10.0, subspace_every=50)
    expected = hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert cfg.hash() == expected


def test_hash_tracks_results_not_locations_nor_unread_fields():
    cfg = make_config("embedded", method="pdp")
    assert cfg.replace(results_dir="elsewhere", cache_dir="/tmp/x", device="cpu",
                       max_physical_batch_size=8).hash() == cfg.hash()
    changed = {cfg.replace(**{f: v}).hash() for f, v in
               [("epsilon", 0.2), ("seed", 1), ("method", "dpsgd"), ("clip_norm", 0.01), ("strategy", "full"),
                ("subspace_interval", 0.5), ("subspace_k", 10)]}
    assert len(changed) == 7 and cfg.hash() not in changed
    # what a method never reads cannot split its runs
    assert cfg.replace(public_weight_hybrid=3.0, public_weight_fdp=3.0, fdp_public="same-batch").hash() == cfg.hash()
    plain = make_config("embedded")
    assert plain.replace(epsilon=0.2, clip_norm=1.0, subspace_k=5, blur_sigma_256=2.0).hash() == plain.hash()
    blurred = plain.replace(blurred_only=True)           # the blurred-only baseline reads the blur
    assert blurred.replace(blur_sigma_256=2.0).hash() != blurred.hash()
    fdp = make_config("embedded", method="fdp")
    assert fdp.replace(public_weight_hybrid=3.0, subspace_interval=0.5).hash() == fdp.hash()
    assert fdp.replace(public_weight_fdp=3.0).hash() != fdp.hash()


def test_the_optimizer_enters_the_hash_only_away_from_adamw_and_momentum_only_under_sgd():
    cfg = make_config("embedded", method="dpsgd")
    sgd = cfg.replace(optimizer="sgd")
    assert cfg.replace(momentum=0.5).hash() == cfg.hash()          # AdamW does not read it
    assert len({cfg.hash(), sgd.hash(), sgd.replace(momentum=0.5).hash()}) == 3
    assert Config.from_dict({k: v for k, v in cfg.to_dict().items() if k not in ("optimizer", "momentum")}) == cfg
    with pytest.raises(ValueError, match="optimizer='adam' is invalid: expected one of \\['adamw', 'sgd'\\]"):
        cfg.replace(optimizer="adam")
    with pytest.raises(ValueError, match="momentum=1.0 is invalid"):
        sgd.replace(momentum=1.0)


def test_a_stored_config_may_name_a_retired_field_at_its_one_value_only():
    d = make_config("embedded", method="dpsgd").to_dict()
    assert Config.from_dict({**d, "subspace_every": 50}) == Config.from_dict(d)
    with pytest.raises(ValueError, match="subspace_every=10 names a retired field"):
        Config.from_dict({**d, "subspace_every": 10})


def test_hash_is_stable_across_processes():
    cfg = make_config("paper", epsilon=0.6, seed=2)
    code = "from dphpe_core import make_config; print(make_config('paper', epsilon=0.6, seed=2).hash())"
    for seed in ("0", "123"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert out.stdout.strip() == cfg.hash()


def test_field_names_are_plain_typed():
    for f in Config.__dataclass_fields__.values():
        assert f.type in ("int", "float", "str", "bool"), f.name
    assert "epsilon" in field_names() and "clip_norm" in field_names()


def test_an_accountant_the_method_cannot_use_is_refused():
    with pytest.raises(ValueError, match=r"accountant='prv' is invalid.*replace-one relation is accounted by "
                                         r"dp-accounting's PLD"):
        make_config("smoke", method="fdp", accountant="prv")
    assert make_config("smoke", method="fdp", fdp_public="public-set", accountant="prv").accountant == "prv"
    assert make_config("smoke", method="dpsgd", accountant="prv").accountant == "prv"
