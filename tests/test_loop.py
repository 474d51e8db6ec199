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
