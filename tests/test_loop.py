"""The shared training loop: fit learns, evaluate scores, the device is chosen as asked."""

import pytest
import torch

from dphpe_core import loop
from dphpe_core.loop import evaluate, fit
from dphpe_core.model import PoseModel


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
    monkeypatch.setattr(loop, "predict", lambda model, images, flip_test: next(calls))
    pckh, pckh01, preds = evaluate(torch.nn.Identity(), ds, device="cpu")
    assert pckh["Mean"] == 100.0 and pckh01["Mean"] == 100.0 and preds.shape == (8, 16, 2)


def test_cuda_request_without_cuda_is_refused(smoke_cfg):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="no CUDA device"):
        loop.resolve_device(smoke_cfg.replace(device="cuda"))


KEEP_SCRIPT = """
import hashlib, sys, torch
from dphpe_core import make_config, build_data
from dphpe_core.loop import fit, keep_freed_memory
from dphpe_core.start import build_model
torch.set_num_threads(1)
cfg = make_config("smoke", method="dpsgd", epsilon=2.0, cache_dir=sys.argv[1], results_dir=sys.argv[2])
data = build_data(cfg)
model = build_model(cfg)
fit(model, cfg, data.private_train, val_set=None, device=torch.device("cpu"), desc="t", progress=False,
    public_set=data.public)
print(keep_freed_memory(), hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest())
"""


@pytest.mark.skipif(__import__("dphpe_core.loop", fromlist=["x"]).allocated_bytes() is None, reason="needs glibc")
def test_keeping_freed_memory_changes_no_bit_of_a_run(smoke_cfg, tmp_path):
    """glibc keeping freed memory (fit does it; DPHPE_KEEP_FREED_MEMORY=0 turns it off) trains the same weights."""
    import os
    import subprocess
    import sys
    out = {}
    for flag in ("1", "0"):
        env = dict(os.environ, DPHPE_KEEP_FREED_MEMORY=flag)
        run = subprocess.run([sys.executable, "-c", KEEP_SCRIPT, smoke_cfg.cache_dir, str(tmp_path)], env=env,
                             capture_output=True, text=True, check=True)
        out[flag] = run.stdout.split()[-2:]
    assert out["1"][0] == "True" and out["0"][0] == "False"
    assert out["1"][1] == out["0"][1]


@pytest.mark.parametrize("method", ["nonprivate", "dpsgd", "pdp", "fdp", "hybrid"])
def test_a_run_stopped_after_an_epoch_goes_on_from_its_checkpoint_to_the_same_bits(smoke_cfg, tmp_path, stop_and_resume,
                                                                                     method):
    """Every method: a run stopped after epoch 1 of 3 and started again from its checkpoint trains the same
    weights, curves and record numbers as the uninterrupted run (the lr decays at epoch 2, the subspace of the
    projecting methods is rebuilt at steps 0 and 11 of 18, so a basis crosses the stop)."""
    from dphpe_core import train as train_mod
    cfg = smoke_cfg.replace(method=method, epsilon=2.0, epochs=3, lr_decay_epoch=2)
    whole = train_mod.train(cfg, progress=False, model_path=tmp_path / "whole.pt")
    ckpt = tmp_path / "run.ckpt"
    stopped, loaded = stop_and_resume
    with stopped():
        train_mod.train(cfg, progress=False, checkpoint_path=ckpt)
    assert ckpt.is_file() and torch.load(ckpt, weights_only=True)["epoch"] == 1
    loaded.clear()
    resumed = train_mod.train(cfg, progress=False, model_path=tmp_path / "resumed.pt", checkpoint_path=ckpt)
    assert loaded[0] is not None and loaded[0]["epoch"] == 1          # went on from epoch 1
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2            # and saved after epoch 2, not after the last
    a, b = torch.load(tmp_path / "whole.pt"), torch.load(tmp_path / "resumed.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.curves == whole.curves and resumed.pckh == whole.pckh and resumed.mechanism == whole.mechanism
    assert resumed.privacy == whole.privacy and resumed.wall_s > 0


def test_a_checkpoint_of_another_run_is_not_used(smoke_cfg, tmp_path, capsys):
    """A checkpoint written under another key (config, commit, version, device, threads) starts the run over,
    saying which parts differ; load_or_train removes a run's checkpoint once its record is stored."""
    import json

    from dphpe_core import results
    from dphpe_core import train as train_mod
    from dphpe_core.provenance import provenance
    cfg = smoke_cfg.replace(method="dpsgd", epsilon=2.0, epochs=2, lr_decay_epoch=2)
    path = train_mod.checkpoint_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = json.loads(json.dumps({"config": cfg.hash(), **provenance(torch.device("cpu"), method=cfg.method)}))
    torch.save({"key": dict(key, config="another", commit="0" * 40), "epoch": 1}, path)
    record = train_mod.load_or_train(cfg, progress=False)
    assert "a checkpoint of another run (commit, config differ); starting the run over" in capsys.readouterr().out
    assert results.run_path(cfg).is_file() and not path.exists() and record.curves["epoch"] == [1, 2]
