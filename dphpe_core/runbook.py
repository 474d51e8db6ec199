"""The notebooks' runs for the book: each notebook under notebooks/ executed by papermill with the preset's
parameters, its plumbing cells hidden from readers, its kernel quiet.

    dphpe notebooks --preset smoke --out book

The kernels run in the repository, read results only (so several may run at once) and talk to this
process over IPC sockets in a private temporary folder, removed afterwards.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def hide_plumbing(path) -> None:
    """Tag the parameters cell and papermill's injected-parameters cell `remove-cell`: readers of the
    book see neither (the notebook file keeps both)."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if {"parameters", "injected-parameters"} & set(tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, path)


# The kernels' own log (ipykernel's "KeyboardInterrupt caught in kernel" when a finished kernel is shut
# down, and the like) says nothing a reader of make book's log can act on; an error in a cell still stops
# the build through papermill, with its traceback
KERNEL_QUIET = ["--IPKernelApp.log_level=CRITICAL"]


def _kernel_manager_class():
    """The kernel manager papermill starts each notebook's kernel with: nbclient's own, over IPC.

    Over TCP (the default) ipykernel logs, at every start, that its traffic is unencrypted; a
    `make book` printed that paragraph once per notebook and it buried the lines a reader needs. The
    kernels run on this machine for this process only, so their sockets are files in a private
    temporary folder instead (IPC, what the warning itself advises), and the warning has no cause.
    """
    import shutil
    import tempfile

    from jupyter_client import AsyncKernelManager
    from traitlets import default

    class LocalKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self):
            return "ipc"

        @default("ip")
        def _ip_default(self):
            return str(Path(tempfile.mkdtemp(prefix="dphpe-kernel-")) / "kernel")

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                shutil.rmtree(Path(self.ip).parent, ignore_errors=True)

    return LocalKernelManager


def run_notebooks(preset: str, out_dir="book", *, notebooks=None, repo=".", results_dir="results",
                  jobs: int = 1) -> list[Path]:
    """Execute each notebook under notebooks/ with papermill (parameters `preset`, and `results_dir`
    where the notebook has it) into out_dir, `jobs` kernels at a time (each reads results only)."""
    from concurrent.futures import ThreadPoolExecutor

    import papermill as pm
    repo = Path(repo).resolve()
    paths = sorted(notebooks or (repo / "notebooks").glob("[0-9]*.ipynb"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # the kernels run in the repository: a path relative to it keeps the build folder out of the notebooks
    params = {"preset": preset, "results_dir": os.path.relpath(Path(results_dir).resolve(), repo)}
    manager = _kernel_manager_class()

    def run(nb) -> Path:
        out = out_dir / Path(nb).name
        t0 = time.perf_counter()
        names = pm.inspect_notebook(str(nb))
        pm.execute_notebook(str(nb), str(out), parameters={k: v for k, v in params.items() if k in names},
                            cwd=str(repo), kernel_name="python3", progress_bar=False,
                            kernel_manager_class=manager, extra_arguments=KERNEL_QUIET)
        hide_plumbing(out)
        print(f"notebook {Path(nb).name}: executed (preset={preset}) in {time.perf_counter() - t0:.0f} s -> {out}",
              flush=True)
        return out

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(run, paths))


def glue_all(values: dict) -> None:
    """Glue every (name, value) of `values` for the book's prose (myst-nb's glue, not displayed): a notebook
    cell asks one package function for its numbers and glues them in one call."""
    from myst_nb import glue
    for name, value in values.items():
        glue(name, value, display=False)
