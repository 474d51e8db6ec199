import pytest
import torch

from dphpe_core import results
from dphpe_core import train as train_mod
from dphpe_core.train import load_or_train


@pytest.fixture(scope="module")
def smoke_run(smoke_cfg, tmp_path_factory):
    cfg = smoke_cfg.replace(results_dir=str(tmp_path_factory.mktemp("results")), epochs=2, lr_decay_epoch=1)
    return cfg, load_or_train(cfg, progress=False)


def test_run_record_holds_what_the_book_needs(smoke_run):
    cfg, r = smoke_run
    assert r.config_hash == cfg.hash() and r.cfg == cfg
    assert set(r.pckh) == {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"} == set(r.pckh01)
    assert 0 <= r.pckh01["Mean"] <= r.pckh["Mean"] <= 100
    assert r.curves["epoch"] == [1, 2] and len(r.curves["loss"]) == len(r.curves["val_pckh"]) == 2
    assert r.curves["lr"] == [cfg.lr, cfg.lr * cfg.lr_decay]
    assert r.wall_s > 0 and r.peak_mem_mb > 0 and r.device == "cpu" and "torch" in r.versions
    assert "without differential privacy" in r.guarantee


def test_load_or_train_returns_the_stored_record(smoke_run, monkeypatch):
    cfg, r = smoke_run
    assert results.run_path(cfg).is_file()
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("retrained a stored config"))
    assert load_or_train(cfg) == r
    assert results.load_runs(results.run_path(cfg).parents[1]) == [r]


def test_same_config_same_record(smoke_run):
    cfg, r = smoke_run
    again = train_mod.train(cfg, progress=False)
    assert again.pckh == r.pckh and again.curves == r.curves


@pytest.fixture(scope="module")
def dpsgd_run(smoke_cfg, tmp_path_factory):
    cfg = smoke_cfg.replace(results_dir=str(tmp_path_factory.mktemp("results")), method="dpsgd", epsilon=2.0,
                            clip_norm=0.1, epochs=2, lr_decay_epoch=1)
    return cfg, load_or_train(cfg, progress=False)


def test_dpsgd_record_reports_the_epsilon_of_its_own_numbers(dpsgd_run):
    from dphpe_core.accounting import epsilon_spent
    cfg, r = dpsgd_run
    p = r.privacy
    n = cfg.n_private
    assert p["sample_rate"] == cfg.expected_batch_size / n and p["steps"] == cfg.epochs * round(n / cfg.expected_batch_size)
    assert 0 < p["delta"] < 1 / n and p["neighbouring"] == "add-remove" and p["clip_norm"] == cfg.clip_norm
    again = epsilon_spent(noise_multiplier=p["noise_multiplier"], delta=p["delta"], sample_rate=p["sample_rate"], steps=p["steps"], accountant=p["accountant"])
    assert 0 < p["epsilon_spent"] == pytest.approx(again, rel=1e-12) and p["epsilon_spent"] <= cfg.epsilon
    assert "add/remove" in r.guarantee and "DP-SGD" in r.guarantee
    assert r.curves["loss"] == [None, None]        # no noise-free statistic of the private crops is recorded
    assert len(r.curves["val_pckh"]) == 2 and 0 <= r.pckh["Mean"] <= 100


def test_delta_at_or_above_one_over_n_is_refused(smoke_cfg):
    from dphpe_core.privacy import privacy_plan
    with pytest.raises(ValueError, match=r"delta=0.02: expected a number in \(0, 1/N_private\)"):
        privacy_plan(smoke_cfg.replace(method="dpsgd", delta=0.02), n_private=96, steps_per_epoch=6)


def test_record_says_where_it_comes_from(smoke_run):
    _, r = smoke_run
    prov = r.provenance
    assert prov["training_version"] == results.training_version(r.config["method"]) == r.training_version
    assert prov["torch"] == torch.__version__ and prov["threads"] == torch.get_num_threads()
    assert prov["device"] == "cpu" and prov["gpu"] is None and prov["cpu"]
    from conftest import REPO
    if (REPO / ".git").exists():          # a checkout: the commit is the code's, and cleanliness is known
        assert len(prov["commit"]) == 40 and isinstance(prov["clean"], bool)


def test_a_record_of_another_training_version_is_refused_loudly(smoke_run, tmp_path, monkeypatch):
    import dataclasses
    cfg, r = smoke_run
    stale = dataclasses.replace(r, training_version=r.training_version - 1)
    path = results.save(stale, tmp_path / "stale.json")
    with pytest.raises(results.StaleRecord, match=rf"training code version {r.training_version - 1} of {cfg.method}, this "
                       rf"code is version {results.training_version(cfg.method)}.*make book FRESH=1"):
        results.load(path)
    cfg2 = cfg.replace(results_dir=str(tmp_path))
    results.save(stale, results.run_path(cfg2))
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("a stale record was silently retrained"))
    with pytest.raises(results.StaleRecord):
        load_or_train(cfg2)


def test_fresh_retrains_and_overwrites(smoke_run, tmp_path):
    import dataclasses
    cfg, r = smoke_run
    cfg2 = cfg.replace(results_dir=str(tmp_path))
    results.save(dataclasses.replace(r, wall_s=-1.0), results.run_path(cfg2))
    again = load_or_train(cfg2, progress=False, fresh=True)
    assert again.wall_s > 0 and results.load(results.run_path(cfg2)).wall_s == again.wall_s
    assert again.pckh == r.pckh


def test_an_unwritable_results_folder_is_refused_before_any_training(smoke_cfg, tmp_path, monkeypatch):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the results folder should be")
    cfg = smoke_cfg.replace(method="dpsgd", results_dir=str(blocked))
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("trained although the result cannot be kept"))
    with pytest.raises(PermissionError, match=rf"{blocked}.*results cannot be written there.*nothing was trained"):
        load_or_train(cfg)


def test_a_failed_save_leaves_no_temporary_file_and_says_what_was_lost(smoke_run, tmp_path, monkeypatch):
    from pathlib import Path
    _, r = smoke_run
    path = tmp_path / "runs" / "x.json"

    def full_disk(self, *a, **k):
        Path.write_bytes(self, b"{")       # a partial write, then the disk is full
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match=r"x.json: the record of run .* was not saved \(No space left on device\)"):
        results.save(r, path)
    monkeypatch.undo()
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_record_is_verified_when_read(smoke_run, tmp_path, monkeypatch):
    """A record copied to another config's path, or with a hand-edited epsilon, is refused by name."""
    import dataclasses
    import json
    cfg = smoke_run[0].replace(method="dpsgd", epochs=1, results_dir=str(tmp_path / "own"))
    r = load_or_train(cfg, progress=False)
    other = cfg.replace(epsilon=0.5, results_dir=str(tmp_path))
    planted = results.run_path(other)
    results.save(r, planted)                        # the epsilon-0.8 record under epsilon 0.5's name
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("an untrusted record was retrained over"))
    with pytest.raises(results.UntrustedRecord, match=rf"{planted.name}: its config hashes to {r.config_hash}"):
        load_or_train(other)
    copy = results.save(r, tmp_path / "copy" / f"{r.config_hash}.json")     # its own name, asked for another
    with pytest.raises(results.UntrustedRecord, match=rf"asked for config {other.hash()}"):
        results.load(copy, expect=other)
    edited = json.loads(json.dumps(dataclasses.asdict(r)))
    edited["privacy"]["epsilon_spent"] = 0.01
    path = tmp_path / "edited" / f"{r.config_hash}.json"
    path.parent.mkdir()
    path.write_text(json.dumps(edited))
    with pytest.raises(results.UntrustedRecord, match=r"reports epsilon 0.01, but its accountant .* gives"):
        results.load(path)
    with pytest.raises(results.UntrustedRecord, match="more than one record"):
        results.summary_frame([r, r])


def test_the_outside_data_are_part_of_a_records_identity(smoke_run, mpii_fixture, tmp_path):
    """An MPII folder whose annotations or images change is another run: the clean folder's record
    (its sigma and epsilon) is never returned for it."""
    import dataclasses
    import json
    import shutil

    from dphpe_core import make_config
    from dphpe_core.fingerprint import data_fingerprint
    root = tmp_path / "mpii"
    shutil.copytree(mpii_fixture["root"], root)
    cfg = make_config("paper", data_root=str(root), public_dataset="synthpose", n_public=20, results_dir=str(tmp_path))
    before, fingerprint = results.run_path(cfg), data_fingerprint(cfg)
    assert len(fingerprint) == 12 and before.stem == results.run_key(cfg.hash(), fingerprint) != cfg.hash()
    # a record of the clean folder, where load_or_train looks for it
    _, r = smoke_run
    record = dataclasses.replace(r, config=cfg.to_dict(), config_hash=cfg.hash(), data_fingerprint=fingerprint,
                                 training_version=results.training_version(cfg.method))
    results.save(record, before)
    assert results.load(before, expect=cfg).data_fingerprint == fingerprint
    valid = root / "annot" / "valid.json"
    people = json.loads(valid.read_text())
    people[0]["joints_vis"][0] = 0                              # one label changed
    valid.write_text(json.dumps(people))
    assert data_fingerprint(cfg) != fingerprint and results.run_path(cfg) != before
    with pytest.raises(results.UntrustedRecord, match="the annotations or the images changed"):
        results.load(before, expect=cfg)
    shutil.copy(next((root / "images").iterdir()), root / "images" / "extra.jpg")     # one image more
    assert len({fingerprint, data_fingerprint(cfg)}) == 2
    assert data_fingerprint(make_config("smoke")) == ""          # SynthPose: its cache's manifest instead


def test_retraining_for_the_weights_keeps_the_record_and_refuses_one_it_cannot_reproduce(smoke_run, tmp_path):
    import dataclasses
    from dphpe_core.train import REPRODUCE_POINTS, load_trained_model, model_path
    cfg, r = smoke_run
    cfg2 = cfg.replace(results_dir=str(tmp_path))
    results.save(r, results.run_path(cfg2))                           # a record without its weights
    again = load_or_train(cfg2, progress=False, keep_model=True)
    assert again.pckh == r.pckh and results.load(results.run_path(cfg2)) == r and model_path(cfg2).is_file()
    assert isinstance(load_trained_model(cfg2), torch.nn.Module)
    model_path(cfg2).unlink()
    edited = dict(r.pckh, Mean=r.pckh["Mean"] + REPRODUCE_POINTS + 0.5)  # a score edited by hand
    results.save(dataclasses.replace(r, pckh=edited), results.run_path(cfg2))
    with pytest.raises(results.UntrustedRecord, match="retrained for its weights, the run scores"):
        load_or_train(cfg2, progress=False, keep_model=True)
    assert not model_path(cfg2).is_file()
