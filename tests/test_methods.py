"""Every private method end to end on `smoke`: its accounting, its data flow, its guarantee."""

import pytest
import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch.utils.data import Dataset

from dphpe_core import accounting
from dphpe_core.publicpasses import PUBLIC_SEED_OFFSET, SUBSPACE_SEED_OFFSET, IndependentBatches, rebuild_every
from dphpe_core.strategies import for_config, set_strategy
from dphpe_core.train import fit, train

VARIANTS = [("dpsgd", "independent"), ("pdp", "independent"), ("fdp", "independent"), ("fdp", "same-batch"),
            ("fdp", "public-set"), ("hybrid", "independent")]


@pytest.fixture(scope="module")
def runs(smoke_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    return {v: train(smoke_cfg.replace(method=v[0], fdp_public=v[1], results_dir=str(out)), progress=False)
            for v in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
def test_reported_epsilon_is_that_of_the_records_own_numbers(runs, variant):
    r = runs[variant]
    p = r.privacy
    args = {k: p[k] for k in ("noise_multiplier", "delta", "sample_rate", "steps")}
    feature = variant[0] in ("fdp", "hybrid") and variant[1] != "public-set"
    if variant[1] == "same-batch" and feature:
        own = accounting.epsilon_without_amplification(**args, neighbouring="replace-one")
        assert p["participations"] == accounting.participations(p["sample_rate"], p["steps"], p["delta"] / 2)
    elif feature:
        own = accounting.epsilon_spent(**args, accountant="pld", neighbouring="replace-one")
    else:
        own = accounting.epsilon_spent(**args, accountant="rdp")
    assert p["neighbouring"] == ("replace-one" if feature else "add-remove")
    assert p["sensitivity"] == ("2C" if feature else "C")
    assert 0 < p["epsilon_spent"] == pytest.approx(own, rel=1e-9) and own <= p["epsilon_target"]
    assert p["epsilon_paper_accounting"] == pytest.approx(accounting.epsilon_spent(**args, accountant="rdp"), rel=1e-9)
    assert p["delta"] < 1 / r.config["n_private"]
    assert 0 <= r.pckh["Mean"] <= 100 and all(x is None for x in r.curves["loss"])


def test_each_guarantee_says_what_it_covers(runs):
    assert "image and keypoint labels alike" in runs["dpsgd", "independent"].guarantee
    assert "post-processing" in runs["pdp", "independent"].guarantee
    for v in [("fdp", "independent"), ("fdp", "same-batch"), ("hybrid", "independent")]:
        g = runs[v].guarantee
        assert "feature-DP" in g and "labels" in g and "NOT protected" in g and "replace-one" in g
    assert "no amplification" in runs["fdp", "same-batch"].guarantee
    assert "public split only" in runs["fdp", "public-set"].guarantee


def test_feature_dp_needs_more_noise_than_the_papers_accounting_admits(runs):
    ind, same = runs["fdp", "independent"].privacy, runs["fdp", "same-batch"].privacy
    dp = runs["dpsgd", "independent"].privacy
    assert ind["noise_multiplier"] > dp["noise_multiplier"] and ind["epsilon_paper_accounting"] < ind["epsilon_spent"]
    assert same["noise_multiplier"] > ind["noise_multiplier"] and not same["amplification"]
    assert runs["fdp", "public-set"].privacy["noise_multiplier"] == dp["noise_multiplier"]


def test_projection_records_its_basis_and_kept_norm(runs):
    for v in [("pdp", "independent"), ("hybrid", "independent")]:
        proj = runs[v].mechanism["projection"]
        assert 0 < proj["mean_kept_norm_fraction"] < 1 and 1 <= proj["rank"] <= 8 and "basis" in proj["layout"]
        assert runs[v].privacy["subspace"]["k"] == 8
    assert runs["dpsgd", "independent"].mechanism == {}


class Recorder(Dataset):
    """A data set that logs every index it is asked for."""

    def __init__(self, base):
        self.base, self.log = base, []

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.log.append(int(i))
        return self.base[i]


def _instrumented_fit(cfg, bundle, method, fdp_public):
    cfg = cfg.replace(method=method, fdp_public=fdp_public, epochs=2, lr_decay_epoch=1)
    private, public = Recorder(bundle.private_train), Recorder(bundle.public)
    torch.manual_seed(0)
    model = set_strategy(for_config(cfg), cfg.strategy)
    _, mech = fit(model, cfg, private, val_set=None, device="cpu", desc="", progress=False, public_set=public)
    steps_per_epoch = mech.privacy["steps"] // cfg.epochs
    sampler = UniformWithReplacementSampler(num_samples=len(private), sample_rate=mech.privacy["sample_rate"],
                                            generator=torch.Generator().manual_seed(cfg.seed), steps=steps_per_epoch)
    private_batches = [b for _ in range(cfg.epochs) for b in sampler]
    return cfg, private.log, public.log, private_batches, mech.privacy["steps"]


def test_independent_public_batches_come_from_their_own_draws(smoke_cfg, smoke_bundle):
    cfg, priv_log, pub_log, private_batches, steps = _instrumented_fit(smoke_cfg, smoke_bundle, "fdp", "independent")
    public_batches = list(IndependentBatches(len(smoke_bundle.private_train), cfg.expected_batch_size,
                                             seed=cfg.seed + PUBLIC_SEED_OFFSET, steps=steps))
    # each step reads its Poisson batch, then a public batch that is a fixed stream of its own generator
    assert priv_log == [i for b, pub in zip(private_batches, public_batches) for i in [*b, *pub]]
    assert pub_log == []
    assert len({tuple(b) for b in public_batches}) == steps and all(len(b) == cfg.expected_batch_size
                                                                    for b in public_batches)


def test_public_set_never_reads_a_private_row_for_the_public_gradient(smoke_cfg, smoke_bundle):
    cfg, priv_log, pub_log, private_batches, steps = _instrumented_fit(smoke_cfg, smoke_bundle, "fdp", "public-set")
    assert priv_log == [i for b in private_batches for i in b]          # the private pass only
    public_batches = IndependentBatches(len(smoke_bundle.public), cfg.expected_batch_size,
                                        seed=cfg.seed + PUBLIC_SEED_OFFSET, steps=steps)
    assert pub_log == [i for b in public_batches for i in b]


def test_same_batch_reads_nothing_but_the_private_batch(smoke_cfg, smoke_bundle):
    _, priv_log, pub_log, private_batches, _ = _instrumented_fit(smoke_cfg, smoke_bundle, "fdp", "same-batch")
    assert priv_log == [i for b in private_batches for i in b] and pub_log == []


def test_the_subspace_is_built_from_the_public_split_only(smoke_cfg, smoke_bundle):
    cfg, priv_log, pub_log, private_batches, steps = _instrumented_fit(smoke_cfg, smoke_bundle, "pdp", "independent")
    assert priv_log == [i for b in private_batches for i in b]
    draws = list(IndependentBatches(len(smoke_bundle.public), cfg.subspace_m, seed=cfg.seed + SUBSPACE_SEED_OFFSET,
                                    steps=steps))
    every = rebuild_every(cfg, steps)
    assert every > 1           # the smoke preset's schedule skips steps, so the test sees the schedule
    assert pub_log == [i for t, b in enumerate(draws) if t % every == 0 for i in b]
    private_people = {smoke_bundle.private_train[i]["person_id"] for i in range(len(smoke_bundle.private_train))}
    public_people = {smoke_bundle.public[i]["person_id"] for i in set(pub_log)}
    assert private_people.isdisjoint(public_people)


def test_a_subspace_larger_than_the_public_split_allows_is_refused(smoke_cfg, smoke_bundle):
    """The smoke public split has 64 crops: k = m = 100 cannot be honoured (it was cut to 64 while the
    record's layout said rank 100)."""
    from dphpe_core.mechanisms import make_optimizer
    cfg = smoke_cfg.replace(method="pdp", subspace_m=100, subspace_k=100)
    model = set_strategy(for_config(cfg), cfg.strategy)
    with pytest.raises(ValueError, match=r"subspace_m=100: the public split has only 64 crops"):
        make_optimizer(cfg, model, private_set=smoke_bundle.private_train, public_set=smoke_bundle.public,
                       steps_per_epoch=6)
