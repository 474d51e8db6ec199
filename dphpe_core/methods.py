"""The method table: what each training method is made of, in one place.

    python -c "from dphpe_core.methods import METHODS; print(list(METHODS))"

Every other module asks this table what a method does (whether it is private, projects, adds a
public gradient, which config fields it reads, what its step costs, which version of its training
code made a record) instead of testing the method's name. It imports nothing from the package, so
that config.py can use it.

A method's `version` is the version of the training code's results for that method: a change that
alters what a method's runs compute bumps its version, and from then on its older records are
refused (results.load) and recomputed, while the records of the methods it did not touch stand.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Parts:
    """What a method is: DP-SGD's noisy gradient, and what it adds to it."""
    name: str                      # in prose ("the run's guarantee (DP-SGD; ...)")
    display: str                   # in tables and figures
    private: bool                  # clipped, noised per-sample gradients (Opacus)
    project: bool = False          # g <- V V^T g onto the public-gradient subspace
    public_gradient: bool = False  # + lambda x the noise-free gradient on blurred crops
    weight_field: str = ""         # the Config field that holds its lambda
    cost: float = 1.0              # step time over a non-private step (`dphpe bench`, embedded, rounded)
    version: int = 1               # the training code's version for this method (see above)
    # the public sources (fdp_public) beyond the default that the sweep runs it with (Grid.fdp_publics)
    other_sources: tuple[str, ...] = ()
    # the book's audits of it (audits.AUDITS): honestly with these public sources, and under the paper's
    # accounting with these (the paper's feature DP)
    audit_sources: tuple[str, ...] = ()
    paper_audit_sources: tuple[str, ...] = ()


METHODS: dict[str, Parts] = {
    "nonprivate": Parts("non-private training", "Non-private", private=False),
    "dpsgd": Parts("DP-SGD", "DP-SGD", private=True, cost=1.3, audit_sources=("independent",)),
    # version 2: the subspace is rebuilt on a schedule that scales with the run (subspace_interval). Its cost and
    # the hybrid's with a rebuild at every step: `dphpe bench`, embedded finetuning (bench/README.md, 2026-12-01)
    "pdp": Parts("PDP-SGD", "PDP-SGD", private=True, project=True, cost=2.5, version=2,
                 audit_sources=("independent",)),
    "fdp": Parts("feature DP", "FDP", private=True, public_gradient=True, weight_field="public_weight_fdp", cost=2.7,
                 other_sources=("same-batch", "public-set"), audit_sources=("independent", "same-batch", "public-set"),
                 paper_audit_sources=("same-batch", "independent")),
    "hybrid": Parts("the hybrid", "Hybrid", private=True, project=True, public_gradient=True,
                    weight_field="public_weight_hybrid", cost=3.9, version=2,
                    audit_sources=("independent", "same-batch")),
}
PRIVATE_METHODS = tuple(m for m, p in METHODS.items() if p.private)
METHOD_NAMES = {m: p.display for m, p in METHODS.items()}
NONPRIVATE = next(m for m, p in METHODS.items() if not p.private)
# the private method every other is measured against (the paper's baseline): what a method wins back is
# its gain over this one, and the cost of privacy is this one's loss
REFERENCE = "dpsgd"
PROJECTING = tuple(m for m, p in METHODS.items() if p.project)
HEADLINE = "hybrid"         # the paper's headline method (its 82.61 at epsilon 0.8), finding 1's subject


def label(method: str, fdp_public: str = "", *, sep: str = "/") -> str:
    """A run's method with its public source where it has one: 'fdp/same-batch', 'dpsgd'.

    >>> label("fdp", "same-batch"), label("dpsgd", "independent")
    ('fdp/same-batch', 'dpsgd')
    """
    return method + (f"{sep}{fdp_public}" if METHODS[method].public_gradient and fdp_public else "")

# Config fields only some methods read (every other field is read by every method)
PRIVACY_FIELDS = ("epsilon", "delta", "clip_norm", "accountant")
SUBSPACE_FIELDS = ("subspace_k", "subspace_m", "subspace_interval", "subspace_budget_mb")
PUBLIC_GRADIENT_FIELDS = ("fdp_public",)
BLUR_FIELDS = ("blur_kernel_256", "blur_sigma_256")


def unread_fields(method: str, *, blurred_only: bool = False, fdp_public: str = "independent") -> set[str]:
    """The Config fields a run of `method` never reads (they cannot change its results). A method
    with a public gradient drawn from the private crops (fdp_public 'independent' or 'same-batch') is
    accounted under replace-one neighbours with PLD whatever the accountant field says (the paper's
    RDP accounting is reported beside it for every method), so it does not read `accountant`.

    >>> sorted(unread_fields("pdp"))
    ['blur_kernel_256', 'blur_sigma_256', 'fdp_public', 'public_weight_fdp', 'public_weight_hybrid']
    >>> "accountant" in unread_fields("fdp"), "accountant" in unread_fields("fdp", fdp_public="public-set")
    (True, False)
    """
    parts = METHODS[method]
    unread = {p.weight_field for m, p in METHODS.items() if p.weight_field and m != method}
    if not parts.private:
        unread |= set(PRIVACY_FIELDS)
    if not parts.project:
        unread |= set(SUBSPACE_FIELDS)
    if parts.public_gradient and fdp_public != "public-set":
        unread.add("accountant")
    if not parts.public_gradient:
        unread |= set(PUBLIC_GRADIENT_FIELDS)
        if not blurred_only:
            unread |= set(BLUR_FIELDS)
    return unread
