"""Hyperparameters are chosen on the public split alone, and the embedded preset holds the choice."""

import json

import pytest

from dphpe_core import make_config
from dphpe_core.sources import split_source
from dphpe_core.tuning import EXTEND, STAGES, TUNING_SPLIT, candidates, disagreements, stand_in_splits, tune, tuning_path
from dphpe_core.tuning_optimizers import (OPTIMIZER_FIRST, OPTIMIZER_LRS, axis_epsilons, optimizer_tuning_path,
                                          tune_optimizers)


def test_stand_in_splits_are_disjoint_and_cover_the_public_split(smoke_cfg):
    parts = stand_in_splits(smoke_cfg)
    rows = [set(ds.source.indices.tolist()) for ds in parts.values()]
    assert sum(map(len, rows)) == len(set().union(*rows)) == smoke_cfg.n_public
    shares = list(TUNING_SPLIT.values())
    assert [len(r) for r in rows[:-1]] == [round(smoke_cfg.n_public * f / sum(shares)) for f in shares[:-1]]
    assert not parts["val"].train and parts["private"].train
    first = parts["private"].source
    assert first.sample(0).person_id == first.base.sample(int(first.indices[0])).person_id
    batch = parts["private"].without_augmentation().batch([0, 1])
    assert batch["person_id"].tolist() == [first.sample(i).person_id for i in (0, 1)]


def test_split_source_refuses_an_empty_part(smoke_bundle):
    with pytest.raises(ValueError, match="subset 'b' .* is empty"):
        split_source(smoke_bundle.public.source, {"a": 1.0, "b": 0.0}, seed=0)


def test_tuning_reads_no_private_or_val_crop_and_chooses_the_best_candidate(smoke_cfg, tmp_path, public_only):
    out = tune("smoke", progress=False, cache_dir=smoke_cfg.cache_dir, results_dir=str(tmp_path))
    assert candidates(smoke_cfg, "subspace_k", (0.25, 0.5, 1.0)) == (4, 8, 16)
    assert [n["field"] for n in out["stages"]] == [f for _, f, _, _ in STAGES]
    for method, field, first, ladder in STAGES:
        rows = [r for r in out["rows"] if r["field"] == field]
        tried = [r["value"] for r in rows]
        assert tried[:len(first)] == list(candidates(smoke_cfg, field, first))   # the first candidates, then the walk
        assert len(tried) <= len(first) + EXTEND and set(tried) <= set(candidates(smoke_cfg, field, ladder))
        best = max(rows, key=lambda r: r["pckh_mean"])["value"]
        assert out["chosen"][field] == best
        # the stage stopped because neither side scores higher, or at its axis' end, or out of extensions
        order = list(candidates(smoke_cfg, field, ladder))
        ends = sorted(order.index(v) for v in tried)
        note = next(n["note"] for n in out["stages"] if n["field"] == field)
        at = order.index(best)
        assert (ends[0] < at < ends[-1]) == (note == "no value on either side of the choice scores higher")
        if at in (ends[0], ends[-1]):
            assert at in (0, len(order) - 1) or "extensions are spent" in note
    cfg = make_config("smoke", results_dir=str(tmp_path))
    assert json.loads(tuning_path(cfg).read_text())["chosen"] == out["chosen"]
    assert out["split"] == {"private": 26, "public": 26, "val": 12}


def test_the_embedded_preset_holds_the_committed_tuning_choice():
    from conftest import REPO
    cfg = make_config("embedded", results_dir=str(REPO / "results"))
    path = tuning_path(cfg)
    assert path.is_file(), f"{path} is committed with the embedded study's records"
    tuning = json.loads(path.read_text())
    assert disagreements(cfg, tuning) == {}
    assert set(tuning["chosen"]) == {field for _, field, _, _ in STAGES}


def test_optimizer_tuning_reads_no_private_or_val_crop_and_chooses_each_optimizers_best_rate(smoke_cfg, tmp_path,
                                                                                              public_only):
    out = tune_optimizers("smoke", progress=False, cache_dir=smoke_cfg.cache_dir, results_dir=str(tmp_path))
    assert set(out["chosen"]) == set(OPTIMIZER_LRS)
    for optimizer, by in out["chosen"].items():
        for eps in axis_epsilons("smoke"):
            rows = [r for r in out["rows"] if r["optimizer"] == optimizer and r["epsilon_real"] == eps]
            tried = [r["lr"] for r in rows]
            assert tried[:len(OPTIMIZER_FIRST[optimizer])] == list(OPTIMIZER_FIRST[optimizer])
            assert set(tried) <= set(OPTIMIZER_LRS[optimizer]) and len(tried) <= len(OPTIMIZER_FIRST[optimizer]) + EXTEND
            assert by[f"{eps:g}"] == max(rows, key=lambda r: r["pckh_mean"])["lr"]
            # the stand-in's epsilon keeps N x epsilon of the real study
            assert {r["epsilon"] for r in rows} == {eps * smoke_cfg.n_private / out["split"]["private"]}
    cfg = make_config("smoke", results_dir=str(tmp_path))
    assert json.loads(optimizer_tuning_path(cfg).read_text())["chosen"] == out["chosen"]


def test_the_optimizer_choice_table_marks_each_choice_and_lists_every_rate_tried():
    from dphpe_core.tuning_optimizers import optimizer_choice_table
    tuning = {"chosen": {"sgd": {"0.8": 0.03}},
              "rows": [dict(optimizer="sgd", epsilon_real=0.8, lr=lr, pckh_mean=v) for lr, v in ((0.1, 20.0), (0.03, 42.0))]}
    table = optimizer_choice_table(tuning)
    assert table.loc[("sgd", 0.8)].iloc[0] == "3e-02: 42.0*, 1e-01: 20.0"


def test_schedule_tuning_reads_no_private_or_val_crop_runs_at_the_schedule_and_keeps_stored_stages(
        smoke_cfg, tmp_path, public_only, monkeypatch):
    from dphpe_core import tuning_schedules as ts
    seen = []
    real = ts.stand_in_run

    def spy(c, *a, **k):
        seen.append(c)
        return real(c, *a, **k)
    monkeypatch.setattr(ts, "stand_in_run", spy)
    where = dict(progress=False, cache_dir=smoke_cfg.cache_dir, results_dir=str(tmp_path))
    first = ts.tune_schedule("smoke", "b8x2", fields=("lr",), **where)
    assert set(first["chosen"]) == {"lr"} and {c.method for c in seen} == {"dpsgd"}
    assert {(c.expected_batch_size, c.epochs, c.lr_decay_epoch) for c in seen} == {(8, 2, 2)}
    assert {c.epsilon for c in seen} == {0.8 * smoke_cfg.n_private / first["split"]["private"]}
    n_lr = len(first["rows"])
    both = ts.tune_schedule("smoke", "b8x2", **where)          # the lr stage is stored: only the interval runs
    assert len(seen) == len(both["rows"]) and [r["field"] for r in both["rows"]][:n_lr] == ["lr"] * n_lr
    assert {c.lr for c in seen[n_lr:]} == {first["chosen"]["lr"]} and {c.method for c in seen[n_lr:]} == {"pdp"}
    for field in ts.SCHEDULE_FIELDS:
        rows = [r for r in both["rows"] if r["field"] == field]
        ladder = ts.LADDERS[field]
        assert both["chosen"][field] == max(rows, key=lambda r: r["pckh_mean"])["value"] and {r["value"] for r in rows} <= set(ladder)
    assert [s["field"] for s in both["stages"]] == list(ts.SCHEDULE_FIELDS)
    assert all(len(s["provenance"]["commit"]) == 40 for s in both["stages"])
    assert ts.read_schedule_tuning("smoke", "b8x2", results_dir=str(tmp_path)) == both


def test_schedule_tuning_refuses_an_unknown_schedule_or_field(tmp_path):
    from dphpe_core import tuning_schedules as ts
    with pytest.raises(ValueError, match=r"no schedule 'b9'.*\['b8x2'\]"):
        ts.tune_schedule("smoke", "b9", results_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"cannot tune \['subspace_k'\] per schedule"):
        ts.tune_schedule("smoke", "b8x2", fields=("subspace_k",), results_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not tuned yet; run `dphpe tune --preset smoke --schedule b8x2`"):
        ts.read_schedule_tuning("smoke", "b8x2", results_dir=str(tmp_path))


def test_the_embedded_schedules_hold_the_values_chosen_on_public_data():
    """A schedule's lr and interval are literals in grid.py; its tuning file (committed) chose them."""
    from conftest import REPO
    from dphpe_core.grid import GRIDS
    from dphpe_core.tuning_schedules import read_schedule_tuning
    for s in GRIDS["embedded"].schedules:
        if s.methods:
            chosen = read_schedule_tuning("embedded", s.name, results_dir=str(REPO / "results"))["chosen"]
            assert chosen["lr"] == s.lr and chosen.get("subspace_interval") == s.subspace_interval


def test_schedule_tuning_reuses_stored_candidates_and_runs_only_the_rungs_a_longer_ladder_adds(smoke_cfg, tmp_path,
                                                                                              monkeypatch):
    """A walk stored under a ladder that ended at 3e-4 (the choice at its end) continues to 1e-4 and runs
    nothing else; a complete file runs nothing and needs no stand-in at all."""
    from dphpe_core import tuning_schedules as ts
    scores = {1e-3: 40.0, 3e-3: 20.0, 1e-2: 2.0, 3e-4: 48.0, 1e-4: 47.0}
    ran = []

    def fake(c, *a, **k):
        ran.append(c.lr)
        return {"pckh_mean": scores[c.lr], "wall_s": 1.0}
    monkeypatch.setattr(ts, "stand_in_run", fake)
    where = dict(progress=False, cache_dir=smoke_cfg.cache_dir, results_dir=str(tmp_path))
    path = ts.schedule_tuning_path(make_config("smoke", cache_dir=smoke_cfg.cache_dir, results_dir=str(tmp_path)), "b8x2")
    path.parent.mkdir(parents=True)
    old = {"chosen": {"lr": 3e-4}, "rows": [dict(method="dpsgd", field="lr", value=v, pckh_mean=scores[v], wall_s=1.0)
                                            for v in (1e-3, 3e-3, 1e-2, 3e-4)],
           "stages": [dict(method="dpsgd", field="lr", chosen=3e-4, note="best at the end of its axis (0.0003)",
                           provenance={"commit": "a" * 40}, wall_s=4.0)]}
    path.write_text(json.dumps(old))
    out = ts.tune_schedule("smoke", "b8x2", fields=("lr",), **where)
    assert ran == [1e-4] and out["chosen"] == {"lr": 3e-4}
    assert out["stages"][0]["note"] == "no value on either side of the choice scores higher"
    assert {r["commit"] for r in out["rows"] if r["value"] != 1e-4} == {"a" * 40}     # whose code ran each row
    assert out["stages"][0]["wall_s"] == 1.0                  # the stand-in time of the one candidate it ran
    # the next stage: the lr stage, walked again from stored rows alone, keeps the entry of the call that ran it
    lr_stage = dict(out["stages"][0], provenance={"commit": "b" * 40})
    path.write_text(json.dumps(dict(out, stages=[lr_stage])))
    intervals = {1.0: 30.0, 0.5: 35.0, 0.2: 33.0, 0.1: 32.0, 0.05: 31.0, 0.0: 30.5}

    def fake_pdp(c, *a, **k):
        assert c.method == "pdp" and c.lr == 3e-4                # the interval's walk, at the lr chosen
        ran.append(c.subspace_interval)
        return {"pckh_mean": intervals[c.subspace_interval], "wall_s": 1.0}
    monkeypatch.setattr(ts, "stand_in_run", fake_pdp)
    both = ts.tune_schedule("smoke", "b8x2", **where)
    assert both["chosen"] == {"lr": 3e-4, "subspace_interval": 0.5} and ran[1:] == [0.5, 0.2, 0.1, 0.05, 0.0, 1.0]
    assert both["stages"][0] == lr_stage and both["stages"][1]["wall_s"] == 6.0
    assert both["stages"][1]["provenance"]["commit"] != "b" * 40
    path.write_text(json.dumps(out))
    monkeypatch.setattr(ts, "stand_in_run", fake)
    monkeypatch.setattr(ts, "stand_in_setup", lambda *a, **k: pytest.fail("a complete file needs no stand-in"))
    assert ts.tune_schedule("smoke", "b8x2", fields=("lr",), **where) == out and ran[:1] == [1e-4]
    with pytest.raises(ValueError, match=r"stage subspace_interval takes the choice of \['lr'\]"):
        ts.tune_schedule("smoke", "b8x2", fields=("subspace_interval",), fresh=True, **where)
