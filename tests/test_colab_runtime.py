"""Every notebook runs top to bottom on a simulated fresh Colab runtime.

The runtime is an empty folder holding only a clone of the repository (the files git would
commit), an empty home (so no data cache and no pretrained start), and a kernel in which
`google.colab` is imported, as on Colab. The notebooks' first cell must then work inside the
clone and every result notebook must read the records there or train what is missing: on the
smoke preset here, where nothing is committed, it trains the smoke study.
"""

import shutil
import subprocess

import pytest

from conftest import REPO
from dphpe_core.colab import repository_url

pytestmark = pytest.mark.slow

FAKE_COLAB = """\
import sys, types
google = types.ModuleType("google")
google.colab = types.ModuleType("google.colab")
sys.modules.setdefault("google", google)
sys.modules["google.colab"] = google.colab
"""


def clone_of_working_tree(dest):
    """The files a clone of this working tree would hold: tracked and untracked-but-not-ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():                  # a file deleted but not yet committed is not in a clone
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def colab_runtime(tmp_path_factory, monkeypatch_module):
    runtime = tmp_path_factory.mktemp("content")
    clone = clone_of_working_tree(runtime / repository_url(REPO).rsplit("/", 1)[-1])
    home = tmp_path_factory.mktemp("home")
    startup = home / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-fake-colab.py").write_text(FAKE_COLAB)
    monkeypatch_module.setenv("HOME", str(home))
    monkeypatch_module.setenv("IPYTHONDIR", str(home / ".ipython"))
    monkeypatch_module.setenv("MPLBACKEND", "agg")
    return runtime, clone, home


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def executed(colab_runtime):
    import nbformat
    import papermill as pm
    runtime, clone, _ = colab_runtime
    out = {}
    for path in sorted((clone / "notebooks").glob("*.ipynb")):
        target = runtime.parent / f"{runtime.name}-out" / path.name
        target.parent.mkdir(exist_ok=True)
        pm.execute_notebook(str(path), str(target), parameters={"preset": "smoke"}, cwd=str(runtime),
                            kernel_name="python3", progress_bar=False)
        out[path.name] = nbformat.read(target, as_version=4)
    return out


def _text(cell) -> str:
    return "".join(o.get("text", "") + "".join(o.get("data", {}).get("text/plain", ""))
                   for o in cell.get("outputs", []))


def test_every_notebook_runs_on_a_fresh_colab_runtime(executed, colab_runtime):
    runtime, clone, home = colab_runtime
    assert len(executed) == len(list((REPO / "notebooks").glob("*.ipynb")))
    for name, nb in executed.items():
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert "Colab without a GPU" in _text(first), (name, _text(first))   # the kernel took itself for Colab
    # the notebooks worked inside the clone: its results/ holds what they read and trained, nothing beside it
    assert sorted(p.name for p in runtime.iterdir()) == [clone.name]
    smoke = clone / "results" / "smoke"
    assert (smoke / "summary.csv").is_file() and (smoke / "tuning.json").is_file()
    assert any((smoke / "runs").glob("*.json")) and any((smoke / "audits").glob("*.json"))
    # and from an empty cache: the data and the start were made on the runtime
    assert any((home / ".cache" / "dphpe").rglob("*"))


def test_the_result_notebooks_read_the_trained_study(executed, colab_runtime):
    """The summary the first result notebook trained is what the others read: one record per grid run."""
    import pandas as pd

    from dphpe_core.grid import grid_configs
    _, clone, _ = colab_runtime
    summary = pd.read_csv(clone / "results" / "smoke" / "summary.csv")
    assert len(summary) == len(grid_configs("smoke")) == len(list((clone / "results" / "smoke" / "runs").glob("*.json")))
