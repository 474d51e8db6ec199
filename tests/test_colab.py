import types

from dphpe_core import make_config
from dphpe_core.colab import INSTALL, in_colab, setup


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


def test_every_notebook_opens_with_the_badge_and_the_colab_cell():
    import json
    from pathlib import Path
    for path in sorted(Path(__file__).parents[1].joinpath("notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        assert "colab.research.google.com" in "".join(cells[0]["source"]), path.name
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        assert '"google.colab" in sys.modules' in code[0] and INSTALL in code[0] and "setup(" in code[0], path.name
