"""The regime chapter's numbers, glued into its prose (runbook.glue_all), and its tables in the book's words:
each a function of regime.py's and cells.py's tables, so that a notebook cell is a call and a plot.

    python -c "from dphpe_core import mapnumbers; help(mapnumbers)"
"""

from __future__ import annotations

from .findings import GAP_MARGIN, verdict
from .intervals import mean_ci_text
from .methods import HEADLINE, METHOD_NAMES, NONPRIVATE, PROJECTING, REFERENCE
from .privacy import relations_table
from .regime import cost_axis_clip_norms, cost_reached_text, optimizer_transfer, paper_cost, paper_view_ratio
from .results import main_grid
from .tuning import MPII_TRAIN_CROPS


def n_axis_numbers(reg) -> dict:
    """The N axis (regime.regime_table): its epsilon and sizes, the paper's N x epsilon, and at the largest
    and the smallest N the reference's, the headline method's and the non-private means, the gap, how far
    the headline method is behind, its recovery and the reference's signal-to-noise."""
    sizes = sorted(reg.n_private.unique())
    eps = float(reg.epsilon.iloc[0])
    out = {"reg_eps": eps, "reg_sizes": ", ".join(f"{n:,}" for n in sizes), "paper_nxe": MPII_TRAIN_CROPS * eps,
           "reg_margin": GAP_MARGIN}
    names = {m: METHOD_NAMES[m] for m in (REFERENCE, HEADLINE, NONPRIVATE)}
    for key, n in (("big", max(sizes)), ("small", min(sizes))):
        frame = reg[reg.n_private == n].set_index("Method")
        for m, name in names.items():
            if name in frame.index:
                out[f"reg_{key}_{m}"] = float(frame.loc[name, "mean"])
        out[f"reg_{key}_rec"] = frame.recovery_text.get(names[HEADLINE], f"no {METHOD_NAMES[HEADLINE].lower()} run")
        if set(names.values()) <= set(frame.index):
            out[f"reg_{key}_gap"] = float(frame.loc[names[NONPRIVATE], "mean"] - frame.loc[names[REFERENCE], "mean"])
            out[f"reg_{key}_behind"] = float(frame.loc[names[REFERENCE], "mean"] - frame.loc[names[HEADLINE], "mean"])
        out[f"reg_{key}_snr"] = float(frame.snr.get(names[REFERENCE], float("nan")))
    return out


def n_axis_table(reg):
    """The N axis in the book: mean ± 95% interval per method (its best C) and private set size."""
    table = reg.assign(cell=mean_ci_text(reg)).pivot(index="Method", columns="n_private", values="cell")
    table.columns = [f"N = {n:,}" for n in table.columns]
    table.index.name = "method (best C)"
    return table


def paper_cost_ends(paper) -> dict[float, float]:
    """DP-SGD's cost in the paper (paper_cost) at its largest and its smallest epsilon, {epsilon: %}."""
    costs = paper_cost(paper)
    return {e: costs[e] for e in (max(costs), min(costs))}


def cost_numbers(axis, summary, paper_costs: dict, preset: str) -> dict:
    """The epsilon axis (regime.cost_axis): its C, seeds and smallest epsilon, the reference's mean and cost
    there, the non-private mean, where the paper's costs are reached, and what the RDP accounting of the
    grid's largest epsilon spends under PLD."""
    low = axis[axis.epsilon == axis.epsilon.min()].set_index("method")
    out = {"cost_clips": " and ".join(f"{c:g}" for c in cost_axis_clip_norms(preset)), "cost_seeds": int(axis.n.max()),
           "cost_eps_min": float(axis.epsilon.min()), "cost_low_dpsgd": float(low.loc[REFERENCE, "mean"]),
           "cost_low_pct": float(low.loc[REFERENCE, "cost_pct"]), "cost_nonprivate": float(axis.nonprivate.iloc[0])}
    for key, (e, share) in zip(("hi", "lo"), paper_costs.items()):
        out.update({f"cost_paper_{key}_eps": e, f"cost_paper_{key}": share,
                    f"cost_reach_{key}": cost_reached_text(axis, share)})
    grid = main_grid(summary)
    rdp = relations_table(grid[(grid.method == REFERENCE) & (grid.strategy == "finetune")])
    out.update(cost_rdp_eps=float(rdp.target.max()), cost_rdp_as_pld=float(rdp.add_remove_pld.iloc[-1]))
    return out


def cost_table(axis):
    """The epsilon axis in the book: mean ± 95% interval per method (its better C), epsilon falling."""
    table = axis.assign(cell=mean_ci_text(axis)).pivot(index="Method", columns="epsilon", values="cell")
    table = table[sorted(table.columns, reverse=True)]
    table.columns = [f"eps {e:g}" for e in table.columns]
    table.index.name = "method (better C)"
    return table


def reference_at_top(reg) -> float:
    """The reference's mean at the N axis' largest private set (the headline cell)."""
    return float(reg[(reg.n_private == reg.n_private.max()) & (reg.method == REFERENCE)]["mean"].iloc[0])


def view_numbers(view, reg, paper) -> dict:
    """The public-view axis (regime.view_axis): the paper's blurred-only ratio, ours at the paper's blur, the
    blurs in pixels, the epsilon and the reference's mean there."""
    at_paper = view[(view.method == NONPRIVATE) & (view.blur_sigma_256 == view.blur_sigma_256.max())].iloc[0]
    return {"view_paper_ratio": paper_view_ratio(paper), "view_ratio_paper_blur": float(at_paper.ratio),
            "view_paper_px": float(at_paper.blur_px), "view_min_px": float(view.blur_px.min()),
            "view_eps": float(reg.epsilon.iloc[0]), "view_dpsgd": reference_at_top(reg)}


def optimizer_numbers(opt, tuning: dict, axis, grid_lr: float) -> dict:
    """The optimizer axis (regime.optimizer_axis) and its tuning: the epsilons, AdamW's chosen rates, whether
    the rates chosen on the stand-in carried to the study (regime.optimizer_transfer), where projection
    gains under each optimizer, and what the chosen rate does against the grid's (`axis`: cost_axis)."""
    adamw = dict(sorted(tuning["chosen"]["adamw"].items(), key=lambda kv: -float(kv[0])))
    carried = optimizer_transfer(opt, tuning)
    out = {"opt_eps": " and ".join(f"{e:g}" for e in sorted(opt.epsilon.unique(), reverse=True)),
           "opt_adamw_rates": ", ".join(f"{lr:g}" for lr in adamw.values()), "opt_tuned_eps": ", ".join(adamw),
           "opt_top_eps": float(opt.epsilon.max()), "opt_projection": projection_gain_text(opt),
           "opt_rate_effect": rate_effect_text(opt, axis, grid_lr)}
    out.update({f"opt_{key.replace('_in', '')}_{name}": carried[name][key]
                for name in ("adamw", "sgd") for key in ("stand_in", "study")})
    return out


def projection_gain_text(opt) -> str:
    """Per optimizer, where each projecting method gains on DP-SGD beyond seed noise, falls behind it, or
    neither (optimizer_axis' points and their 95% interval), in one sentence per optimizer."""
    names = {"adamw": "AdamW", "sgd": "SGD with momentum"}
    out = []
    for optimizer, rows in opt[opt.method.isin(PROJECTING)].groupby("optimizer", sort=False):
        parts = []
        for method in [m for m in PROJECTING if m in set(rows.method)]:
            by = rows[rows.method == method]
            said = {"higher": [], "lower": [], "within seed noise": [], "one seed": []}
            for r in by.sort_values("epsilon", ascending=False).itertuples():
                said[verdict(r.points, r.points_ci)].append(f"{r.epsilon:g} ({r.points:+.1f} ± {r.points_ci:.1f})")
            words = [f"gains at epsilon {', '.join(said['higher'])}" if said["higher"] else "",
                     f"falls behind at {', '.join(said['lower'])}" if said["lower"] else "",
                     f"is within seed noise of it at {', '.join(said['within seed noise'])}"
                     if said["within seed noise"] else ""]
            parts.append(f"{METHOD_NAMES[method]} " + "; ".join(w for w in words if w))
        out.append(f"Under {names.get(optimizer, optimizer)}, against DP-SGD: " + "; ".join(parts) + ".")
    return " ".join(out)


def rate_effect_text(opt, axis, grid_lr: float) -> str:
    """DP-SGD under AdamW at the rate the stand-in chose for each epsilon of the optimizer axis (optimizer_axis)
    against the grid's one rate `grid_lr` there (the epsilon axis, cost_axis), where the two differ."""
    ours = opt[(opt.optimizer == "adamw") & (opt.method == REFERENCE)].set_index("epsilon")
    grid = axis[axis.method == REFERENCE].set_index("epsilon")
    cells = [e for e in sorted(ours.index, reverse=True) if e in grid.index and ours.loc[e, "lr"] != grid_lr]
    if not cells:
        return "No epsilon of the optimizer axis has AdamW at a rate other than the grid's."
    return "DP-SGD under AdamW scores " + "; ".join(
        f"{ours.loc[e, 'mean']:.1f} at epsilon {e:g} with the rate chosen for it ({ours.loc[e, 'lr']:g}) against "
        f"{grid.loc[e, 'mean']:.1f} at the grid's ({grid_lr:g})" for e in cells) + "."


def schedule_table(sched):
    """regime.schedule_axis as the book's table: a row per epsilon and method, a column per schedule
    ('32 x 25 (17,200 steps)'), cells 'mean ± 95%' (the mean alone for one seed)."""
    table = sched.assign(cell=mean_ci_text(sched), schedule=[f"{b} x {e} ({s:,} steps)" for b, e, s in
                                                             zip(sched.batch_size, sched.epochs, sched.steps)])
    order = list(dict.fromkeys(table.sort_values("steps").schedule))
    table = table.pivot(index=["epsilon", "Method"], columns="schedule", values="cell")[order].fillna("not run yet")
    table.columns.name = "expected batch x epochs"
    return table.sort_index(ascending=[False, True])


def schedule_costs(sched) -> dict:
    """{(epsilon, steps): DP-SGD's cost as % of the non-private mean at the same schedule}."""
    at = sched.set_index(["epsilon", "steps", "method"])["mean"]
    return {(e, s): 100 * (1 - at[(e, s, REFERENCE)] / at[(e, s, NONPRIVATE)])
            for e, s, m in at.index if m == REFERENCE and (e, s, NONPRIVATE) in at.index}


def schedule_gain_text(sched) -> str:
    """Per schedule, where each other private method gains on DP-SGD beyond seed noise, falls behind it, or
    neither (schedule_axis' points), one sentence per schedule; single seeds said as such."""
    out = []
    for (steps, batch, epochs), rows in sched[~sched.method.isin((REFERENCE, NONPRIVATE))].groupby(
            ["steps", "batch_size", "epochs"]):
        said = [f"{r.Method} {'one seed' if r.n < 2 else verdict(r.points, r.points_ci)} at epsilon {r.epsilon:g} "
                f"({r.points:+.1f}" + ("" if r.points_ci != r.points_ci else f" ± {r.points_ci:.1f}") + ")"
                for r in rows.sort_values(["epsilon", "method"], ascending=[False, True]).itertuples()]
        out.append(f"At batch {batch} for {epochs} epochs ({steps:,} steps), against DP-SGD: " + "; ".join(said) + ".")
    return " ".join(out) or "No method beside DP-SGD has runs at a schedule other than the preset's yet."


def schedule_numbers(sched, preset: str) -> dict:
    """The schedule axis' numbers for the prose: its schedules, DP-SGD's cost at each (schedule_costs), where
    the others gain (schedule_gain_text), what the grid has not run yet at each schedule and a paper-schedule
    run's time."""
    from .grid import GRIDS
    from .config import make_config
    grid, paper = GRIDS[preset], make_config("paper")
    costs = schedule_costs(sched)
    missing = []
    for s in grid.schedules:
        have, parts = set(s.runs(grid.schedule_epsilons)), [] if NONPRIVATE in s.methods else [METHOD_NAMES[NONPRIVATE]]
        for m in grid.methods:
            lacking = [e for e in grid.schedule_epsilons if (m, e) not in have]
            if lacking:
                parts.append(METHOD_NAMES[m] + ("" if len(lacking) == len(grid.schedule_epsilons) else
                                                " at epsilon " + " and ".join(f"{e:g}" for e in lacking)))
        if parts:
            missing.append(f"at {s.expected_batch_size} x {s.epochs}, " + ", ".join(parts))
    out = {"sched_shapes": ", ".join(f"{b} x {e} ({s:,} steps)" for b, e, s in
                                     sched.drop_duplicates("steps").sort_values("steps")[["batch_size", "epochs", "steps"]].values),
           "sched_eps": " and ".join(f"{e:g}" for e in sorted(sched.epsilon.unique(), reverse=True)),
           "sched_clip": grid.schedule_clip_norm, "sched_costs": "; ".join(
               f"{c:.1f}% at epsilon {e:g} and {s:,} steps" for (e, s), c in sorted(costs.items(), key=lambda kv: (-kv[0][0], kv[0][1]))),
           "sched_gains": schedule_gain_text(sched),
           "sched_missing": ("Not run yet: " + "; ".join(missing) + ".") if missing else "Every method has run at every schedule.",
           "sched_paper_steps": paper.epochs * round(MPII_TRAIN_CROPS / paper.expected_batch_size),
           "sched_paper_shape": f"expected batch {paper.expected_batch_size} for {paper.epochs} epochs, the learning "
                                f"rate x{paper.lr_decay:g} from epoch {paper.lr_decay_epoch}"}
    out.update(sched_long_steps=int(sched.steps.max()), sched_long_times=schedule_times_text(sched))
    return out


def schedule_times_text(sched) -> str:
    """What one run took at the longest schedule of the axis, per method, from the records' clocks (a cell's
    mean `wall_min`): 'Non-private 21 min; DP-SGD 37 min at epsilon 0.8 and 27 min at 0.2'."""
    longest = sched[sched.steps == sched.steps.max()]
    parts = []
    for method in dict.fromkeys(sorted(longest.method, key=lambda m: (m != NONPRIVATE, m != REFERENCE, METHOD_NAMES[m]))):
        rows = longest[longest.method == method].sort_values("epsilon", ascending=False)
        if method == NONPRIVATE:
            parts.append(f"{METHOD_NAMES[method]} {rows.wall_min.iloc[0]:.0f} min")
            continue
        times = [f"{r.wall_min:.0f} min at {'epsilon ' if i == 0 else ''}{r.epsilon:g}" for i, r in enumerate(rows.itertuples())]
        parts.append(f"{METHOD_NAMES[method]} " + " and ".join(times))
    return "; ".join(parts)


def ranking_text(rows) -> str:
    """The private methods of one axis point, best first: '>' where the next is behind beyond seed noise (the 95%
    interval of the difference, findings.difference_from_stats, excludes 0), '≈' where not or where either is a
    single seed.

    >>> import pandas as pd
    >>> ranking_text(pd.DataFrame(dict(Method=["A", "B", "C"], mean=[60.0, 59.5, 50.0], ci95=[1.0, 1.0, 1.0], n=3)))
    'A ≈ B > C'
    """
    from .findings import difference_from_stats
    rows = rows.sort_values("mean", ascending=False).reset_index(drop=True)
    out = str(rows.Method[0])
    for i in range(1, len(rows)):
        d, half = difference_from_stats(*[(rows["mean"][j], rows.ci95[j], int(rows.n[j])) for j in (i - 1, i)])
        out += (" > " if verdict(d, half) == "higher" else " ≈ ") + str(rows.Method[i])
    return out


def rankings(reg, cost, view, opt, sched):
    """The private methods' ranking at every point of every axis (ranking_text), one row per point: the N axis
    (regime_table), epsilon (cost_axis), the public view (view_axis), the optimizer (optimizer_axis) and the
    schedule (schedule_axis)."""
    import pandas as pd
    axes = (("N (private crops)", reg, lambda r: f"{r.n_private:,}"), ("epsilon", cost, lambda r: f"{r.epsilon:g}"),
            ("blur sigma (px)", view, lambda r: f"{r.blur_px:.2f}"),
            ("optimizer, epsilon", opt, lambda r: f"{r.optimizer}, {r.epsilon:g}"),
            ("schedule, epsilon", sched, lambda r: f"{r.batch_size} x {r.epochs}, {r.epsilon:g}"))
    rows = []
    for name, frame, point in axes:
        if frame is None or frame.empty:
            continue
        private = frame[frame.method.isin(set(METHOD_NAMES) - {NONPRIVATE})]
        keys = [point(r) for r in private.itertuples()]
        for key, at in private.groupby(keys, sort=False):
            rows.append({"axis": name, "point": key, "private methods, best first": ranking_text(at)})
    return pd.DataFrame(rows).set_index(["axis", "point"])
