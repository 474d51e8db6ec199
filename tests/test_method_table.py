"""The method table is the one place a method is described: no other module tests a method's name."""

import ast
from pathlib import Path

import pytest

from dphpe_core import config
from dphpe_core.audit import SABOTAGE
from dphpe_core.audits import AUDITS
from dphpe_core.methods import METHODS, NONPRIVATE, PRIVATE_METHODS, PROJECTING, REFERENCE, label
from dphpe_core.grid import GRIDS

PACKAGE = Path(__file__).resolve().parents[1] / "dphpe_core"
# the table, config's validation, and the rules that are about named methods (findings, the tuning grid)
MAY_NAME = {"methods.py", "config.py", "findings.py", "tuning.py"}


def _named(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every string constant in `path` that is exactly a method's name (docstrings aside)."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and n.value in METHODS and id(n) not in docs]


def test_no_module_but_the_table_and_the_rules_names_a_method():
    offenders = {p.name: _named(p) for p in sorted(PACKAGE.glob("*.py")) if p.name not in MAY_NAME}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"method names written outside the method table: {offenders}"


def test_the_scan_would_catch_a_name(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('"""Docstring naming dpsgd is fine."""\nif cfg.method in ("fdp", "hybrid"):\n    pass\n')
    assert [name for _, name in _named(src)] == ["fdp", "hybrid"]


def test_the_tables_roles_are_consistent():
    assert not METHODS[NONPRIVATE].private and NONPRIVATE not in PRIVATE_METHODS
    assert METHODS[REFERENCE].private and not METHODS[REFERENCE].project and not METHODS[REFERENCE].public_gradient
    assert PROJECTING and all(METHODS[m].project for m in PROJECTING)
    assert set(METHODS) == set(config.METHODS)
    for m, p in METHODS.items():
        for src in p.other_sources + p.audit_sources + p.paper_audit_sources:
            assert src in config.FDP_PUBLIC, (m, src)
        if p.other_sources or len(p.audit_sources) > 1 or p.paper_audit_sources:
            assert p.public_gradient, f"{m} has public sources but no public gradient"


def test_the_audits_come_from_the_table():
    honest = [(m, src) for m, src, acc, sab, _ in AUDITS if acc == "honest" and sab == "none"]
    assert {m for m, _ in honest} == set(PRIVATE_METHODS)      # every private method is audited honestly
    assert [sab for m, _, _, sab, _ in AUDITS if sab != "none"] == list(SABOTAGE[1:])
    assert all(m == REFERENCE for m, _, _, sab, _ in AUDITS if sab != "none")
    assert [(m, src) for m, src, acc, _, _ in AUDITS if acc == "paper"] == [
        (m, s) for m, p in METHODS.items() for s in p.paper_audit_sources]


def test_the_sweep_runs_the_other_public_sources_the_table_names():
    g = GRIDS["embedded"]
    runs = {(c.method, c.fdp_public) for c in g.configs("embedded", cost=False)}
    for m, p in METHODS.items():
        for src in p.other_sources:
            assert ((m, src) in runs) == (src in g.fdp_publics)
    assert not {(m, s) for m, s in runs if s != config.Config.fdp_public and not METHODS[m].other_sources}
    assert g.optimizer_methods == (REFERENCE, *PROJECTING)


@pytest.mark.parametrize("method,public,expected", [("fdp", "same-batch", "fdp/same-batch"),
                                                     ("hybrid", "independent", "hybrid/independent"),
                                                     ("pdp", "same-batch", "pdp"), ("nonprivate", "", "nonprivate")])
def test_label_names_the_public_source_only_where_a_method_has_one(method, public, expected):
    assert label(method, public) == expected
