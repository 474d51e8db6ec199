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
