"""Where a result comes from: the code's commit and whether it was committed, the training-code version,
package versions, CPU, threads and device (every run record, start, tuning table and audit carries it).

    python -c "from dphpe_core.provenance import provenance; print(provenance('cpu'))"
"""

from __future__ import annotations

import platform
from pathlib import Path

from .methods import METHODS


def _git(*args: str) -> str | None:
    import subprocess
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model() -> str:
    """The CPU's model name (Linux' /proc/cpuinfo), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device, *, method: str | None = None) -> dict:
    """Where a result comes from: the code's git commit and whether the package's code (dphpe_core/,
    pyproject.toml) had uncommitted changes ("unknown" outside a git checkout), the training-code
    version of `method` (if given), package versions, CPU model, torch threads and the device (with
    the GPU's name)."""
    import torch
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--", ".", "../pyproject.toml") if commit else None
    gpu = torch.cuda.get_device_name(torch.device(device)) if torch.device(device).type == "cuda" else None
    return {"commit": commit or "unknown", "clean": (status == "") if commit else "unknown",
            **({"training_version": METHODS[method].version} if method else {}), **versions(), "cpu": cpu_model(), "threads": torch.get_num_threads(),
            "device": str(device), "gpu": gpu}


def versions() -> dict:
    import numpy
    import opacus
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "opacus": opacus.__version__,
            "numpy": numpy.__version__, "machine": platform.machine()}
