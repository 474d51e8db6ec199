"""The notebooks' first cell: on Google Colab, check the runtime and pick the GPU.

    from dphpe_core.colab import setup; runtime = setup()

The notebooks install the package themselves on Colab (one pip line guarded by
`"google.colab" in sys.modules`, before this module can be imported); `setup` then reports what
the runtime offers and returns the config overrides that use it. Outside Colab it changes
nothing and says so in one line.
"""

from __future__ import annotations

import sys

REPO_URL = "https://github.com/dphpe/dphpe"
INSTALL = f"dphpe @ git+{REPO_URL}"


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
