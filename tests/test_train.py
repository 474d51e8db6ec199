import pytest
import torch

from dphpe_core import results
from dphpe_core import train as train_mod
from dphpe_core.model import PoseModel
from dphpe_core.train import evaluate, fit, load_or_train, pretrained_state


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


def test_pretrained_start_is_cached(smoke_cfg, monkeypatch):
    a = pretrained_state(smoke_cfg, progress=False)
    monkeypatch.setattr(train_mod, "fit", lambda *a, **k: pytest.fail("pretrained twice"))
    b = pretrained_state(smoke_cfg.replace(seed=7, epsilon=0.3), progress=False)  # seed and epsilon do not matter
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fit_learns_a_small_set(smoke_cfg, smoke_bundle):
    from torch.utils.data import Subset
    cfg = smoke_cfg.replace(epochs=60, lr=3e-3, lr_decay_epoch=60, augment=False)
    subset = Subset(smoke_bundle.val, range(16))
    torch.manual_seed(0)
    m = PoseModel("smoke", (cfg.input_h, cfg.input_w), cfg.simcc_split)
    curves, mech = fit(m, cfg, subset, val_set=None, device="cpu", desc="", progress=False)
    assert mech.privacy == {} and not mech.poisson
    assert curves["loss"][-1] < 0.6 * curves["loss"][0]


def test_evaluate_scores_a_perfect_predictor(smoke_bundle, monkeypatch):
    from torch.utils.data import Subset
    ds = Subset(smoke_bundle.val, range(8))
    truth = torch.stack([ds[i]["joints"] for i in range(8)])
    calls = iter([truth])
    monkeypatch.setattr(train_mod, "predict", lambda model, images, flip_test: next(calls))
    pckh, pckh01, preds = evaluate(torch.nn.Identity(), ds, device="cpu")
    assert pckh["Mean"] == 100.0 and pckh01["Mean"] == 100.0 and preds.shape == (8, 16, 2)


def test_cuda_request_without_cuda_is_refused(smoke_cfg):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="no CUDA device"):
        train_mod.resolve_device(smoke_cfg.replace(device="cuda"))


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
    again = epsilon_spent(p["noise_multiplier"], p["delta"], p["sample_rate"], p["steps"], p["accountant"])
    assert 0 < p["epsilon_spent"] == pytest.approx(again, rel=1e-12) and p["epsilon_spent"] <= cfg.epsilon
    assert "add/remove" in r.guarantee and "DP-SGD" in r.guarantee
    assert r.curves["loss"] == [None, None]        # no noise-free statistic of the private crops is recorded
    assert len(r.curves["val_pckh"]) == 2 and 0 <= r.pckh["Mean"] <= 100


def test_delta_at_or_above_one_over_n_is_refused(smoke_cfg):
    from dphpe_core.mechanisms import METHOD_PARTS, privacy_budget
    with pytest.raises(ValueError, match=r"delta=0.02: expected a number in \(0, 1/N_private\)"):
        privacy_budget(smoke_cfg.replace(method="dpsgd", delta=0.02), METHOD_PARTS["dpsgd"], n_private=96,
                       steps_per_epoch=6)
