"""The benchmarks' own checks (their figures are printed, never asserted as timings)."""

import pytest
import torch

from dphpe_core import make_config
from dphpe_core.bench import gpu_check, paper_stand_in


def test_gpu_check_refuses_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        gpu_check()


def test_the_paper_stand_in_builds_the_papers_model_without_data_or_downloads(tmp_path):
    from dphpe_core.start import build_model
    cfg = make_config("paper", **paper_stand_in(tmp_path))
    model = build_model(cfg)
    assert (cfg.model_size, cfg.input_h, cfg.input_w, cfg.dataset) == ("5m", 256, 192, "synthpose")
    assert sum(p.numel() for p in model.parameters()) > 5_000_000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bench/gpu_check.sh runs it there)")
def test_cuda_clipped_sums_equal_the_cpus():
    from dphpe_core.bench import cuda_matches_cpu
    assert cuda_matches_cpu() < 1e-9
