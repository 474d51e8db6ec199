import types

from dphpe_core import make_config
from dphpe_core.colab import BADGE_TEXT, colab_cell, colab_link, in_colab, repository_url, setup, sync_notebooks


def test_outside_colab_nothing_changes():
    said = []
    r = setup(modules={}, cuda_available=False, echo=said.append)
    assert r == {"in_colab": False, "device": "cpu", "overrides": {}} and "Not on Colab" in said[0]


def test_colab_with_a_gpu_trains_on_it():
    fake = {"google.colab": types.ModuleType("google.colab")}
    said = []
    r = setup(modules=fake, cuda_available=True, echo=said.append)
    assert in_colab(fake) and r["device"] == "cuda" and r["overrides"] == {"device": "cuda"}
    assert make_config("paper", **r["overrides"]).device == "cuda"


def test_colab_without_a_gpu_says_how_to_get_one():
    said = []
    r = setup(modules={"google.colab": types.ModuleType("google.colab")}, cuda_available=False, echo=said.append)
    assert r["device"] == "cpu" and "Change runtime type" in said[0]
    assert make_config("embedded", **r["overrides"]).device == "cpu"


def test_every_notebook_opens_with_the_badge_and_the_colab_cell_from_the_one_address():
    import json
    from pathlib import Path
    repo = Path(__file__).parents[1]
    url = repository_url(repo)
    for path in sorted(repo.joinpath("notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        first = "".join(cells[0]["source"])
        assert f"[{BADGE_TEXT}]({colab_link(url, f'notebooks/{path.name}')})" in first, path.name
        assert "colab.research.google.com/assets" not in "".join("".join(c["source"]) for c in cells), path.name
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        assert code[0] == colab_cell(url), path.name
        assert f'REPOSITORY = "{url}"' in code[0] and "git\", \"clone" in code[0] and "runtime = setup()" in code[0]


def test_a_fork_changes_one_line(tmp_path):
    import shutil
    from pathlib import Path
    repo = Path(__file__).parents[1]
    shutil.copytree(repo / "notebooks", tmp_path / "notebooks")
    text = (repo / "_config.yml").read_text().replace(repository_url(repo), "https://github.com/someone/fork")
    (tmp_path / "_config.yml").write_text(text)
    changed = sync_notebooks(tmp_path)
    assert len(changed) == len(list((repo / "notebooks").glob("*.ipynb")))
    for path in changed:
        body = path.read_text()
        assert "someone/fork" in body and "dphpe/dphpe" not in body
    assert sync_notebooks(tmp_path) == []                      # idempotent
    assert sync_notebooks(repo) == []                          # the committed notebooks are in sync


def test_a_notebook_without_the_colab_cell_is_refused(tmp_path):
    import shutil

    import nbformat
    import pytest
    from pathlib import Path
    repo = Path(__file__).parents[1]
    shutil.copy(repo / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('no set-up here')")])
    nbformat.write(nb, tmp_path / "notebooks" / "99_bare.ipynb")
    with pytest.raises(ValueError, match="99_bare.ipynb: its first code cell is not the Colab cell"):
        sync_notebooks(tmp_path)
