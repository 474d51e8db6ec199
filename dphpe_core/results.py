"""Run records: one frozen `RunResult` per config, saved as JSON under results/<preset>/runs/<hash>.json.

    python -c "from dphpe_core.results import load_runs; print(load_runs('results/embedded'))"

A record holds everything needed to read a run without rerunning it: the full config, the
privacy numbers actually used (for private methods), PCKh per joint group at 0.5 and 0.1 on val,
per-epoch curves, wall time, peak memory, device, package versions and the seed.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config

RECORD_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class RunResult:
    config: dict
    config_hash: str
    pckh: dict                  # PCKh@0.5 per group (Head ... Ankle, Mean), val, flip test
    pckh01: dict                # PCKh@0.1 per group
    curves: dict                # epoch, loss, val_pckh (per epoch)
    wall_s: float
    peak_mem_mb: float
    device: str
    versions: dict
    privacy: dict = field(default_factory=dict)   # empty for non-private runs
    guarantee: str = "none: trained without differential privacy"
    record_version: int = RECORD_VERSION

    @property
    def cfg(self) -> Config:
        return Config.from_dict(self.config)

    def summary(self) -> str:
        eps = self.privacy.get("epsilon_spent")
        priv = f"eps={eps:.3g}" if eps is not None else "non-private"
        c = self.config
        return (f"{c['preset']}/{c['method']}/{c['strategy']} seed={c['seed']} {priv}: PCKh@0.5 "
                f"{self.pckh['Mean']:.2f}, @0.1 {self.pckh01['Mean']:.2f} in {self.wall_s:.0f}s "
                f"[{self.config_hash}]")


def run_path(cfg: Config) -> Path:
    return Path(cfg.results_dir) / cfg.preset / "runs" / f"{cfg.hash()}.json"


def save(result: RunResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(result), indent=1, sort_keys=True, allow_nan=True))
    tmp.replace(path)
    return path


def load(path) -> RunResult:
    d = json.loads(Path(path).read_text())
    if d.get("record_version") != RECORD_VERSION:
        raise ValueError(f"{path}: record version {d.get('record_version')}, expected {RECORD_VERSION}; rerun it")
    return RunResult(**d)


def load_runs(folder) -> list[RunResult]:
    return [load(p) for p in sorted(Path(folder).glob("runs/*.json"))]


def versions() -> dict:
    import numpy
    import opacus
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "opacus": opacus.__version__,
            "numpy": numpy.__version__, "machine": platform.machine()}
