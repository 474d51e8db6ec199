"""Run records: one frozen `RunResult` per config, saved as JSON under results/<preset>/runs/<hash>.json.

    python -c "from dphpe_core.results import load_runs; print(load_runs('results/embedded'))"

A record holds everything needed to read a run without rerunning it: the full config, the
privacy numbers actually used (for private methods), PCKh per joint group at 0.5 and 0.1 on val,
per-epoch curves, wall time, peak memory and its provenance: the git commit of the code that made
it and whether that code was committed, package versions, CPU model, threads and device.

Two version numbers guard the records. RECORD_VERSION is the file format. The training-code
version names the training code's results for the record's method (`methods.METHODS[m].version`,
`training_version(m)`): a change that alters what a method's runs compute bumps it, and from then on
that method's older records are refused with a message that says how to recompute them
(`make book FRESH=1`, or the sweep), so that records of two codes never mix silently in one table.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config
from .methods import METHOD_NAMES, METHODS, NONPRIVATE

RECORD_VERSION = 3


def training_version(method: str) -> int:
    """The version of the training code's results for `method` (bumped where a change alters them)."""
    return METHODS[method].version


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
    mechanism: dict = field(default_factory=dict)  # what the step measured, e.g. the projection's kept norm
    provenance: dict = field(default_factory=dict)  # commit, clean tree, versions, CPU, threads, device
    data_fingerprint: str = ""                    # the outside data read (fingerprint.data_fingerprint); '' for SynthPose
    record_version: int = RECORD_VERSION
    training_version: int = 0                     # training_version(method) when made (train.py sets it)

    @property
    def cfg(self) -> Config:
        return Config.from_dict(self.config)

    def numbers(self) -> dict:
        """The run chapter's numbers: PCKh@0.5 and @0.1, the epsilon spent (inf without privacy), the noise
        multiplier (0 without) and the wall time."""
        return {"run_pckh": self.pckh["Mean"], "run_pckh01": self.pckh01["Mean"],
                "run_eps": self.privacy.get("epsilon_spent", float("inf")),
                "run_sigma": self.privacy.get("noise_multiplier", 0.0), "run_wall": self.wall_s}

    def summary(self) -> str:
        p, c = self.privacy, self.config
        priv = "non-private"
        if p:
            priv = (f"eps={p['epsilon_spent']:.3g} ({p['neighbouring']}, delta={p['delta']:.2g}) "
                    f"sigma={p['noise_multiplier']:.3g} C={p['clip_norm']:g}")
            if "fdp_public" in p:
                priv += f" public={p['fdp_public']}"
        return (f"{c['preset']}/{c['method']}/{c['strategy']} seed={c['seed']} {priv}: PCKh@0.5 "
                f"{self.pckh['Mean']:.2f}, @0.1 {self.pckh01['Mean']:.2f} in {self.wall_s:.0f}s "
                f"[{self.config_hash}]")


def run_key(config_hash: str, data_fingerprint: str) -> str:
    """A run's identity: its config hash, combined with the fingerprint of the outside data it read
    (MPII, COCO; fingerprint.data_fingerprint) when there is any.

    >>> run_key("0123456789ab", "")
    '0123456789ab'
    """
    if not data_fingerprint:
        return config_hash
    import hashlib
    return hashlib.sha256(f"{config_hash}:{data_fingerprint}".encode()).hexdigest()[:12]


def run_path(cfg: Config) -> Path:
    """Where the record of `cfg` lives: results/<preset>/runs/<run_key>.json."""
    from .fingerprint import data_fingerprint
    return Path(cfg.results_dir) / cfg.preset / "runs" / f"{run_key(cfg.hash(), data_fingerprint(cfg))}.json"


def check_writable(folder) -> Path:
    """`folder` (made if absent) when a file can be written in it; else a clear error naming it, so that
    nothing is trained whose result could not be kept."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"{folder}: results cannot be written there ({e.strerror or e}); nothing was trained. "
                              f"Make it writable or set results_dir to another folder") from None
    return folder


def save(result: RunResult, path: Path) -> Path:
    """Write the record atomically (a temporary file, then a rename); a failed write leaves no file
    behind and says what was not saved."""
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(dataclasses.asdict(result), indent=1, sort_keys=True, allow_nan=True))
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(f"{path}: the record of run {result.config_hash} was not saved ({e.strerror or e}); its "
                      f"result: {result.summary()}") from None
    return path


class StaleRecord(ValueError):
    """A record written in another record format or by another version of the training code."""


class UntrustedRecord(ValueError):
    """A record that does not verify: its name, its config and its epsilon disagree."""


def load(path, *, expect: Config | None = None) -> RunResult:
    """The record at `path`, verified: StaleRecord when its format or its method's training-code version
    is not this code's; UntrustedRecord when its config does not hash to its file name (or to `expect`'s
    hash: the config it was asked for) or its epsilon is not what its own accountant gives for its own
    noise multiplier, sample rate, steps and delta. Each error names the file and what disagrees."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no run record there (train the config, or run the sweep)")
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UntrustedRecord(f"{path}: cannot be read as a run record ({e}); delete it and run again") from None
    how = ("recompute the study with `make book FRESH=1` (or `dphpe sweep --preset P --fresh`), "
           "or delete the stale records")
    if d.get("record_version") != RECORD_VERSION:
        raise StaleRecord(f"{path}: record format {d.get('record_version')}, this code reads {RECORD_VERSION}; {how}")
    method = d.get("config", {}).get("method")
    if method not in METHODS:
        raise StaleRecord(f"{path}: the record names method {method!r}, this code knows {list(METHODS)}; {how}")
    if d.get("training_version") != training_version(method):
        raise StaleRecord(f"{path}: made by training code version {d.get('training_version')} of {method}, this code is "
                          f"version {training_version(method)}, whose results differ; {how}")
    result = RunResult(**d)
    verify(result, name=path.stem, expect=expect, where=str(path))
    return result


def verify(result: RunResult, *, name: str | None = None, expect: Config | None = None, where: str = "record") -> None:
    """Refuse (UntrustedRecord) a record whose config does not hash to `name` or to `expect`'s hash, or
    whose epsilon does not follow from its own numbers."""
    from .accounting import record_epsilon
    own = result.cfg.hash()
    key = run_key(own, result.data_fingerprint)
    fix = "delete it (it was copied or edited by hand) and run that config again"
    if own != result.config_hash or (name is not None and name != key):
        raise UntrustedRecord(f"{where}: its config hashes to {own}, but the record says {result.config_hash} and its "
                              f"file name {name}; {fix}")
    if expect is not None and expect.hash() != own:
        raise UntrustedRecord(f"{where}: asked for config {expect.hash()}, the record holds config {own}; {fix}")
    if expect is not None:
        from .fingerprint import data_fingerprint
        now = data_fingerprint(expect)
        if now != result.data_fingerprint:
            raise UntrustedRecord(f"{where}: made from data with fingerprint {result.data_fingerprint or 'none'}, but "
                                  f"the data there now has fingerprint {now or 'none'}: the annotations or the images "
                                  f"changed; run it again (delete the record, or train with another results_dir)")
    p = result.privacy
    if p:
        again = record_epsilon(p)
        # 1e-6: PLD composed over 17,200 steps recomputes 2.3e-9 apart on another CPU (FFT rounding); an edit is larger
        if not (p["epsilon_spent"] > 0 and abs(again - p["epsilon_spent"]) <= 1e-6 * again):
            raise UntrustedRecord(f"{where}: it reports epsilon {p['epsilon_spent']!r}, but its accountant "
                                  f"({p['accountant']}, {p['neighbouring']}) gives {again!r} for its own noise "
                                  f"multiplier {p['noise_multiplier']}, sample rate {p['sample_rate']}, {p['steps']} "
                                  f"steps and delta {p['delta']}; {fix}")


def load_runs(folder) -> list[RunResult]:
    return [load(p) for p in sorted(Path(folder).glob("runs/*.json"))]


GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
COLUMNS = ["preset", "strategy", "method", "fdp_public", "blurred_only", "epsilon", "clip_norm", "blur_sigma_256",
           "optimizer", "lr", "seed",
           "n_private", "batch_size", "epochs", "noise_multiplier", "noise_std_per_step", "snr",
           "sample_rate", "steps", "delta", "neighbouring", "epsilon_spent",
           "epsilon_paper_accounting", "pckh_mean", *[f"pckh_{g.lower()}" for g in GROUPS], "pckh01_mean",
           *[f"pckh01_{g.lower()}" for g in GROUPS], "kept_norm", "wall_s", "peak_mem_mb", "config_hash"]
PAPER_RESULTS = Path(__file__).with_name("paper_results.csv")   # package data: read off PAPER.md


def regime(noise_multiplier: float, clip_norm: float, batch_size: int, steps: int) -> dict:
    """The regime of a private run: the noise's standard deviation on the averaged gradient per step,
    sigma x C / B, and the run's signal-to-noise, sqrt(steps) x B / sigma (a sum of `steps` averaged
    clipped gradients, each of norm up to C, against the noise accumulated over them, in units of C).

    >>> r = regime(1.12, 0.1, 32, 17379)          # the paper's epsilon 0.8 (PAPER.md)
    >>> round(r["noise_std_per_step"], 5), round(r["snr"])
    (0.0035, 3767)
    """
    return {"noise_std_per_step": noise_multiplier * clip_norm / batch_size,
            "snr": steps ** 0.5 * batch_size / noise_multiplier}


def summary_frame(runs: list):
    """One row per run with the columns of summary.csv (COLUMNS); two records of one config are refused
    (a second copy would pass for a second seed with no spread)."""
    import pandas as pd
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.config_hash] = seen.get(r.config_hash, 0) + 1
    twice = sorted(h for h, k in seen.items() if k > 1)
    if twice:
        raise UntrustedRecord(f"{len(twice)} config(s) have more than one record ({', '.join(twice[:5])}): "
                              f"a summary holds one record per config")
    rows = []
    for r in runs:
        c, p = r.config, r.privacy
        private = bool(p)
        reg = (regime(p["noise_multiplier"], p["clip_norm"], c["expected_batch_size"], p["steps"]) if private
               else {"noise_std_per_step": None, "snr": None})
        row = dict(preset=c["preset"], strategy=c["strategy"], method=c["method"],
                   fdp_public=c["fdp_public"] if METHODS[c["method"]].public_gradient else "",
                   blurred_only=c["blurred_only"], epsilon=c["epsilon"] if private else None,
                   clip_norm=c["clip_norm"] if private else None,
                   blur_sigma_256=c["blur_sigma_256"] if METHODS[c["method"]].public_gradient or c["blurred_only"] else None,
                   optimizer=c.get("optimizer", "adamw"), lr=c["lr"], seed=c["seed"],
                   n_private=p.get("n_private") or c["n_private"], batch_size=c["expected_batch_size"],
                   epochs=c["epochs"], **reg,
                   **{k: p.get(k) for k in ("noise_multiplier", "sample_rate", "steps", "delta", "neighbouring",
                                            "epsilon_spent", "epsilon_paper_accounting")},
                   pckh_mean=r.pckh["Mean"], **{f"pckh_{g.lower()}": r.pckh[g] for g in GROUPS},
                   pckh01_mean=r.pckh01["Mean"], **{f"pckh01_{g.lower()}": r.pckh01[g] for g in GROUPS},
                   kept_norm=r.mechanism.get("projection", {}).get("mean_kept_norm_fraction"),
                   wall_s=r.wall_s, peak_mem_mb=r.peak_mem_mb, config_hash=r.config_hash)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def read_summary(path):
    """summary.csv as written by the sweep, with a readable `Method` column."""
    import pandas as pd
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no summary yet; run `dphpe sweep --preset <preset>` first")
    df = pd.read_csv(path, keep_default_na=True, dtype={"fdp_public": object})
    df["fdp_public"] = df["fdp_public"].fillna("")
    df["Method"] = df["method"].map(METHOD_NAMES)
    return df


def at_full_size(df):
    """The rows at the preset's own private training size (the regime runs' smaller sizes left out)."""
    return df[df.n_private == df.n_private.max()] if "n_private" in df and len(df) else df


def paper_grid(df):
    """The rows of the paper's grid: the runs only the regime map holds left out (the summary's
    `map_only` column, sweep.mark_parts)."""
    return df[~df.map_only.astype(bool)] if "map_only" in df else df


def main_grid(df):
    """The private runs of the paper's grid at the preset's size (paper_grid), each method with its default
    public source where it has one."""
    private = at_full_size(paper_grid(df[df.method != NONPRIVATE]))
    return private[private.fdp_public.isin(("", Config.fdp_public))]


def best_clip(df, strategy: str, epsilon: float) -> float:
    """The clipping norm with the highest mean PCKh over private methods at (strategy, epsilon)."""
    cell = main_grid(df)
    cell = cell[(cell.strategy == strategy) & (cell.epsilon == epsilon)]
    return float(cell.groupby("clip_norm").pckh_mean.mean().idxmax())


def paper_results():
    """The paper's numbers (PAPER.md, read off its figures), one row per published cell."""
    import pandas as pd
    return pd.read_csv(PAPER_RESULTS, comment="#")


