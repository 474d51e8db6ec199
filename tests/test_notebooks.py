"""Every notebook runs under papermill on the smoke preset and keeps to the notebook rules."""

import json
from pathlib import Path

import nbformat
import pytest

from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:1] == ["01_data.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_rules(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown", "a notebook opens with a markdown introduction"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    for line in params[0].source.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            json.loads(value.strip().replace("'", '"').replace("True", "true").replace("False", "false"))
    for c in nb.cells:
        if c.cell_type == "code":
            assert not any(l.lstrip().startswith(("def ", "class ")) for l in c.source.splitlines()), \
                "no def or class in a notebook: put it in dphpe_core"
            # a cell is a call and a plot: what computes a table or a number is a package function
            assert len(c.source.splitlines()) <= 15, f"a code cell of {len(c.source.splitlines())} lines (at most 15)"
            assert not any(l.lstrip().startswith(("for ", "while ")) for l in c.source.splitlines()), \
                "no loop in a notebook cell: a package function computes what it would"
            assert not c.outputs, "notebook templates are committed without outputs"


def test_notebooks_execute_on_smoke(smoke_book):
    _, executed = smoke_book
    assert [p.name for p in executed] == [p.name for p in NOTEBOOKS]
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{path.name}: {errors[:1]}"


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_each_notebook_glues_every_number_its_prose_uses(smoke_book, name):
    import re
    _, executed = smoke_book
    nb = nbformat.read(Path(executed[0]).parent / name, as_version=4)
    used = {m.split(":")[0] for c in nb.cells if c.cell_type == "markdown"
            for m in re.findall(r"\{glue:text\}`([^`]+)`", c.source)}
    glued = {o.get("metadata", {}).get("scrapbook", {}).get("name") for c in nb.cells if c.cell_type == "code"
             for o in c.outputs}
    assert used <= glued, used - glued
    prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    typed = re.findall(r"(?<![\w.`{$\\])\d+\.\d+%", prose)
    assert not typed, f"numbers typed into the prose instead of glued: {typed}"


def test_the_book_pages_glue_only_numbers_their_notebooks_glue(smoke_book):
    """A page's `{glue:text}`notebook.ipynb::key:format`` must name a key that notebook glues (else the
    book build warns and fails late)."""
    import re
    _, executed = smoke_book
    folder = Path(executed[0]).parent
    found = 0
    for page in sorted((REPO / "book").glob("*.md")):
        for doc, key, fmt in re.findall(r"\{glue:text\}`([^`:]+)::([^`:]+)(:[^`]*)?`", page.read_text()):
            assert fmt, f"{page.name}: {doc}::{key} needs a format (`:s`, `:d`, ...): myst-nb splits at the last colon"
            assert doc.endswith(".ipynb"), f"{page.name}: {doc}::{key} names the notebook with its suffix (myst-nb needs it)"
            nb = nbformat.read(folder / doc, as_version=4)
            glued = {o.get("metadata", {}).get("scrapbook", {}).get("name") for c in nb.cells
                     if c.cell_type == "code" for o in c.outputs}
            assert key in glued, f"{page.name}: {doc}::{key} is not glued by {doc}"
            found += 1
    assert found, "the reproduce chapter pastes the GPU figures from the cost chapter"
