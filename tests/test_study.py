"""The embedded study's committed records: current, with provenance, and reproducible."""

import shutil

import pytest

from conftest import REPO
from dphpe_core import results
from dphpe_core.config import Config
from dphpe_core.start import pretrain_key
from dphpe_core.grid import grid_configs
from dphpe_core.sweep import relative_cost

RUNS = REPO / "results" / "embedded" / "runs"


def committed() -> list[results.RunResult]:
    records = [results.load(p) for p in sorted(RUNS.glob("*.json"))]
    if not records:
        pytest.fail(f"no committed records under {RUNS}: the embedded study's records are data of the repository")
    return records


def test_every_committed_record_is_current_and_says_where_it_comes_from():
    grid = {c.hash() for name in ("study", "paper-schedule") for c in grid_configs("embedded", name)}
    for r in committed():                         # results.load refuses another format or training version
        cfg = Config.from_dict(r.config)
        assert r.config_hash == cfg.hash() and (RUNS / f"{r.config_hash}.json").is_file()
        assert r.config_hash in grid, f"{r.config_hash} is not a configuration of the embedded grid"
        prov = r.provenance
        assert len(prov["commit"]) == 40 and prov["clean"] is True, f"{r.config_hash}: made from uncommitted code"
        assert prov["training_version"] == results.training_version(cfg.method) == r.training_version
        assert {"torch", "cpu", "threads", "device"} <= set(prov) and r.wall_s > 0


def test_the_committed_start_is_the_one_the_records_need():
    starts = REPO / "results" / "embedded" / "starts"
    keys = {pretrain_key(Config.from_dict(r.config)) for r in committed() if r.config["strategy"] != "scratch"}
    for key in keys:
        assert (starts / f"{key}.pt").is_file() and (starts / f"{key}.json").is_file(), key


@pytest.mark.slow
def test_the_cheapest_committed_private_record_reproduces_from_an_empty_cache(tmp_path):
    """Retrain it from scratch (empty data cache; the committed start): the same sigma and epsilon
    exactly, PCKh@0.5 within one point."""
    from dphpe_core.train import train
    private = [r for r in committed() if r.privacy]
    record = min(private, key=lambda r: (relative_cost(Config.from_dict(r.config)), r.config_hash))
    cfg = Config.from_dict(record.config).replace(results_dir=str(tmp_path / "results"),
                                                  cache_dir=str(tmp_path / "cache"), device="cpu")
    shutil.copytree(REPO / "results" / "embedded" / "starts", tmp_path / "results" / "embedded" / "starts")
    again = train(cfg, progress=False)
    assert again.privacy["noise_multiplier"] == record.privacy["noise_multiplier"]
    assert again.privacy["epsilon_spent"] == record.privacy["epsilon_spent"]
    assert again.pckh["Mean"] == pytest.approx(record.pckh["Mean"], abs=1.0)


RUN_CHAPTER = dict(method="hybrid", strategy="finetune", epsilon=0.8, clip_norm=0.1, fdp_public="independent", seed=0)


def test_the_run_chapters_committed_weights_are_its_records_own(tmp_path):
    """notebooks/10_run.ipynb reads the weights committed beside its record instead of retraining: the
    notebook's parameters name that record, and the weights score on val what the record says, to the bit."""
    import json

    from dphpe_core import build_data, make_config
    from dphpe_core.loop import evaluate, image_view
    from dphpe_core.train import load_trained_model, model_path
    nb = json.loads((REPO / "notebooks" / "10_run.ipynb").read_text())
    params = next("".join(c["source"]) for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    for name, value in RUN_CHAPTER.items():
        assert f"{name} = {value!r}" in params.replace('"', "'"), name
    cfg = make_config("embedded", results_dir=str(REPO / "results"), **RUN_CHAPTER)
    assert model_path(cfg).is_file(), f"{model_path(cfg)}: the run chapter's weights are committed with its record"
    record = results.load(results.run_path(cfg), expect=cfg)
    pckh, _, _ = evaluate(load_trained_model(cfg), build_data(cfg).val, device="cpu", flip_test=cfg.flip_test,
                          view=image_view(cfg))
    assert pckh == record.pckh


def test_the_grids_paper_equivalent_cells_are_those_its_records_choose():
    """sweep's paper_cells are literals; cells.paper_cells chooses them from the committed records of the
    epsilon and public-view axes (DP-SGD's cost and the blurred-only share nearest the paper's)."""
    from dphpe_core import cells
    from dphpe_core.grid import GRIDS
    from dphpe_core.sweep import mark_parts
    frame = mark_parts(results.summary_frame(committed()))
    picked = cells.paper_cells(frame, results.paper_results())
    chosen = list(zip(picked.epsilon, picked.blur_sigma_256))
    assert len(chosen) == 2 and set(GRIDS["embedded"].paper_cells) <= set(chosen)
