"""The notebooks' first cell: on Google Colab, check the runtime and pick the GPU.

    from dphpe_core.colab import setup; runtime = setup()

The notebooks install the package themselves on Colab (one pip line guarded by
`"google.colab" in sys.modules`, before this module can be imported); `setup` then reports what
the runtime offers and returns the config overrides that use it. Outside Colab it changes
nothing and says so in one line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# The repository's address lives in _config.yml (repository.url). The notebooks' Colab badge and
# install line are written from it by `dphpe sync-notebooks` (a test checks they agree), so a fork
# changes one line and runs that command.
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^)\s\"]+")
INSTALL_LINE = re.compile(r'"dphpe @ git\+[^"]+"')


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


def sync_notebooks(repo=".") -> list[Path]:
    """Write the repository's address from _config.yml into every notebook's badge and install line;
    the notebooks that changed."""
    import nbformat
    repo = Path(repo)
    url = repository_url(repo)
    changed = []
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        before = [c.source for c in nb.cells]
        for cell in nb.cells:
            cell.source = BADGE.sub(colab_link(url, f"notebooks/{path.name}"), cell.source)
            cell.source = INSTALL_LINE.sub(f'"dphpe @ git+{url}"', cell.source)
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
