"""overrides.py: --set pairs and the flags that alias Config fields, typed like the field, each field once."""

import argparse

import pytest

from dphpe_core import config
from dphpe_core.cli import main
from dphpe_core.methods import PRIVATE_METHODS
from dphpe_core.overrides import field_flags, parse_overrides, parse_sets


def _parser(**choices):
    p = argparse.ArgumentParser()
    p.add_argument("--set", action="append")
    return field_flags(p, "method", "epsilon", "seed", "fdp_public", choices=choices or None)


def test_a_flag_is_the_field_typed_like_it():
    out = parse_overrides(_parser().parse_args(["--epsilon", "0.4", "--seed", "3", "--set", "clip_norm=1.0"]))
    assert out == {"epsilon": 0.4, "seed": 3, "clip_norm": 1.0}
    assert type(out["epsilon"]) is float and type(out["seed"]) is int


def test_flag_choices_are_configs_own_constants_or_narrower():
    p = _parser()
    assert {a.dest: a.choices for a in p._actions}["field_method"] == config.METHODS
    assert {a.dest: a.choices for a in p._actions}["field_fdp_public"] == config.FDP_PUBLIC
    with pytest.raises(SystemExit):
        p.parse_args(["--method", "bogus"])
    with pytest.raises(SystemExit):
        _parser(method=PRIVATE_METHODS).parse_args(["--method", "nonprivate"])


def test_a_field_given_as_a_flag_and_as_a_set_is_refused():
    with pytest.raises(SystemExit, match="epsilon is given twice"):
        parse_overrides(_parser().parse_args(["--epsilon", "0.4", "--set", "epsilon=0.8"]))


def test_sets_are_typed_and_checked():
    assert parse_sets(["augment=no", "n_private=100"]) == {"augment": False, "n_private": 100}
    with pytest.raises(SystemExit, match="expected a value of type int"):
        parse_sets(["n_private=ten"])


def test_trains_flags_reach_the_config(monkeypatch):
    import dphpe_core.train as train_mod
    seen = {}

    class Done:
        def summary(self):
            return "stub"

    def fake(cfg):
        seen["cfg"] = cfg
        return Done()
    monkeypatch.setattr(train_mod, "load_or_train", fake)
    main(["train", "--preset", "smoke", "--method", "pdp", "--clip-norm", "0.01", "--strategy", "full"])
    cfg = seen["cfg"]
    assert (cfg.method, cfg.clip_norm, cfg.strategy) == ("pdp", 0.01, "full")
