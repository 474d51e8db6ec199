import json
from pathlib import Path

import numpy as np
import pytest

from dphpe_core.cli import main


def test_config_prints_overrides_and_hash(capsys):
    assert main(["config", "--preset", "smoke", "--set", "epsilon=0.4", "--set", "augment=false"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epsilon"] == 0.4 and out["augment"] is False and len(out["hash"]) == 12


@pytest.mark.parametrize("args, msg", [(["--set", "epsilonn=1"], "did you mean 'epsilon'"),
                                       (["--set", "epsilon=abc"], "expected a value of type float"),
                                       (["--set", "epsilon=0"], "epsilon=0.0 is invalid")])
def test_config_errors_are_clear(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(["config", "--preset", "smoke", *args])
    assert msg in str(e.value)


def test_eval_mpii_prints_the_table(mpii_fixture, tmp_path, capsys):
    preds = np.stack([p["joints"] for p in mpii_fixture["val"]])
    np.save(tmp_path / "p.npy", preds)
    assert main(["eval-mpii", str(tmp_path / "p.npy"), str(mpii_fixture["root"] / "annot" / "gt_valid.mat")]) == 0
    out = capsys.readouterr().out
    assert "PCKh@0.5" in out and "PCKh@0.1" in out and out.count("100.00") == 16


def test_missing_file_is_an_error_not_a_traceback(tmp_path, capsys):
    np.save(tmp_path / "p.npy", np.zeros((1, 16, 2)))
    assert main(["eval-mpii", str(tmp_path / "p.npy"), str(tmp_path / "gt_valid.mat")]) == 2
    assert "gt_valid.mat" in capsys.readouterr().err


@pytest.mark.parametrize("args, msg", [
    (["--set", "augment=ture"], "expected a boolean"),
    (["--set", "epsilon=0.4", "--set", "epsilon=0.5"], "epsilon is given twice"),
])
def test_no_silent_guess_and_no_silent_override(args, msg):
    with pytest.raises(SystemExit) as e:
        main(["config", "--preset", "smoke", *args])
    assert msg in str(e.value)


def test_a_flag_and_a_set_of_the_same_field_are_refused(monkeypatch):
    import dphpe_core.train as train_mod
    monkeypatch.setattr(train_mod, "load_or_train", lambda cfg: pytest.fail("trained despite a conflict"))
    with pytest.raises(SystemExit, match="clip_norm is given twice"):
        main(["train", "--preset", "smoke", "--method", "dpsgd", "--clip-norm", "0.1", "--set", "clip_norm=1.0"])


def test_audit_takes_the_public_source_from_set_when_no_flag_is_given(monkeypatch):
    import dphpe_core.audit as audit_mod
    seen = {}

    def fake(cfg, **kwargs):
        seen["cfg"] = cfg
        raise SystemExit("stop")
    monkeypatch.setattr(audit_mod, "run_audit", fake)
    with pytest.raises(SystemExit, match="stop"):
        main(["audit", "--preset", "smoke", "--method", "fdp", "--set", "fdp_public=same-batch"])
    assert seen["cfg"].fdp_public == "same-batch"
    with pytest.raises(SystemExit, match="fdp_public is given twice"):
        main(["audit", "--preset", "smoke", "--method", "fdp", "--fdp-public", "independent",
              "--set", "fdp_public=same-batch"])


def test_notebook_kernels_run_over_ipc_so_the_log_holds_one_line_per_notebook(tmp_path, capfd):
    """ipykernel warned at every start that TCP is unencrypted (a paragraph per notebook in make
    book's log); run_notebooks' kernels use IPC sockets in a private folder, removed afterwards."""
    import glob
    import tempfile

    import nbformat
    from dphpe_core.runbook import run_notebooks
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell('preset = "smoke"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(preset * 2)")]
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "01_x.ipynb")
    before = set(glob.glob(str(Path(tempfile.gettempdir()) / "dphpe-kernel-*")))
    [out] = run_notebooks("embedded", tmp_path / "out", notebooks=[tmp_path / "nb" / "01_x.ipynb"], repo=tmp_path)
    captured = capfd.readouterr()
    assert "without encryption" not in captured.out + captured.err
    assert captured.out.strip().splitlines() == [l for l in captured.out.strip().splitlines() if l.startswith("notebook 01_x.ipynb: executed")]
    assert "embeddedembedded" in out.read_text()
    assert set(glob.glob(str(Path(tempfile.gettempdir()) / "dphpe-kernel-*"))) == before


def test_tune_schedules_tunes_each_schedule_make_book_runs_and_then_reuses_it(smoke_cfg, tmp_path, capsys):
    where = ["--set", f"cache_dir={smoke_cfg.cache_dir}", "--set", f"results_dir={tmp_path}"]
    assert main(["tune", "--preset", "smoke", "--schedules", "--stages", "lr", *where]) == 0
    first = capsys.readouterr().out
    assert "schedule tuning of b8x2: ran on the public split" in first and "chosen lr=" in first
    assert (tmp_path / "smoke" / "schedules" / "b8x2.json").is_file()
    assert main(["tune", "--preset", "smoke", "--schedule", "b8x2", "--stages", "lr", *where]) == 0
    assert "schedule tuning of b8x2: reused" in capsys.readouterr().out
