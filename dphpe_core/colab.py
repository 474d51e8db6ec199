"""The notebooks' first cell: on Google Colab, fetch the repository, install it, pick the GPU.

    from dphpe_core.colab import setup; runtime = setup()

Every notebook opens with the same cell (`COLAB_CELL`, written by `dphpe sync-notebooks`). On
Colab it clones the repository, with the committed records of the embedded study, works inside
the clone (so that `results/` is the repository's) and installs the package with its pinned
dependencies; `setup` then reports what the runtime offers and returns the config overrides that
use it. Outside Colab the cell changes nothing and says so in one line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# The repository's address lives in _config.yml (repository.url). The notebooks' Colab badge and
# first cell are written from it by `dphpe sync-notebooks` (a test checks they agree), so a fork
# changes one line and runs that command.
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^)\s\"]+")
# The badge is a text link ("Open in Colab", styled as a badge by book/_static/dphpe.css): the image
# Colab serves would be a request to the outside from every page, and a broken image offline.
BADGE_TEXT = "Open in Colab"
BADGE_IMAGE = re.compile(r"!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)")
COLAB_CELL = """\
import os
import subprocess
import sys
from importlib.metadata import distributions
REPOSITORY = "{url}"
if "google.colab" in sys.modules:  # on Colab: the repository with its study records, installed (a few minutes)
    folder = REPOSITORY.rsplit("/", 1)[-1]
    if not os.path.isfile("dphpe_core/colab.py"):
        if not os.path.isdir(folder):
            subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, folder], check=True)
        os.chdir(folder)  # results/ is now the repository's: its committed records are read, not retrained
    if "dphpe" not in {{d.metadata["Name"] for d in distributions()}}:  # if pip asks for a restart: restart, rerun
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "."], check=True)
from dphpe_core.colab import setup
runtime = setup()"""


def repository_url(repo=".") -> str:
    """repository.url of the book's _config.yml, without a trailing slash or .git."""
    import yaml
    config = yaml.safe_load((Path(repo) / "_config.yml").read_text())
    try:
        url = config["repository"]["url"]
    except (KeyError, TypeError):
        raise ValueError(f"{Path(repo) / '_config.yml'} has no repository.url; expected e.g. "
                         f"'repository: {{url: https://github.com/OWNER/NAME}}'") from None
    return url.rstrip("/").removesuffix(".git")


def colab_link(url: str, notebook: str, branch: str = "main") -> str:
    """The Colab address of `notebook` (a path in the repository) on GitHub."""
    return f"https://colab.research.google.com/github/{url.split('github.com/', 1)[-1]}/blob/{branch}/{notebook}"


def colab_cell(url: str) -> str:
    """The first code cell of every notebook, for the repository at `url`."""
    return COLAB_CELL.format(url=url)


def sync_notebooks(repo=".") -> list[Path]:
    """Write the repository's address from _config.yml into every notebook's badge (a text link:
    an image badge becomes one) and its first code cell (`COLAB_CELL`); the notebooks that changed."""
    import nbformat
    repo = Path(repo)
    url = repository_url(repo)
    changed = []
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        before = [c.source for c in nb.cells]
        for cell in nb.cells:
            cell.source = BADGE_IMAGE.sub(BADGE_TEXT, cell.source)
            cell.source = BADGE.sub(colab_link(url, f"notebooks/{path.name}"), cell.source)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if not code or "google.colab" not in code[0].source:
            raise ValueError(f"{path}: its first code cell is not the Colab cell; expected every notebook to open "
                             f"with it (dphpe_core.colab.COLAB_CELL)")
        code[0].source = colab_cell(url)
        if [c.source for c in nb.cells] != before:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def in_colab(modules=None) -> bool:
    return "google.colab" in (sys.modules if modules is None else modules)


def setup(*, modules=None, cuda_available=None, echo=print) -> dict:
    """{'in_colab', 'device', 'overrides'}: the device to train on and the config overrides for it.

    On Colab without a GPU it explains how to get one (Runtime > Change runtime type) and goes on
    with the CPU, where the `embedded` preset runs as on a laptop.
    """
    import torch
    colab = in_colab(modules)
    gpu = torch.cuda.is_available() if cuda_available is None else cuda_available
    device = "cuda" if gpu else "cpu"
    if colab and gpu:
        name = torch.cuda.get_device_name(0) if cuda_available is None else "a CUDA GPU"
        echo(f"Colab with {name}: training runs on the GPU (device='cuda').")
    elif colab:
        echo("Colab without a GPU: choose Runtime > Change runtime type > GPU and rerun, or go on with the CPU "
             "(the embedded preset takes minutes per run there; the paper preset needs a GPU).")
    else:
        echo(f"Not on Colab: nothing to set up; device='auto' picks {device}.")
    return {"in_colab": colab, "device": device, "overrides": {"device": device} if colab else {}}
