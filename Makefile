# make book   builds the study for PRESET: the tuning on public data, the sweep (resumable; the embedded
#             study's committed records are reused), the notebooks (papermill), the book
# make book FRESH=1   recomputes the tuning, the pretrained start and every record first
# make test   runs the whole test suite, notebooks included
# Both create .venv first when it is absent.
PRESET ?= embedded
FRESH ?=
FRESH_FLAG := $(if $(filter 1 yes true,$(FRESH)),--fresh,)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import dphpe_core, torch, opacus, papermill, jupyter_book"
	touch $(STAMP)

JOBS ?= 2

# one line per stage (what it reused, what it ran) and per notebook, then where the book is
book: $(STAMP)
	@rm -rf book/_generated
	@$(VENV)/bin/dphpe tune --preset $(PRESET) $(FRESH_FLAG)
	@$(VENV)/bin/dphpe tune --preset $(PRESET) --optimizers $(FRESH_FLAG)
	@$(VENV)/bin/dphpe tune --preset $(PRESET) --schedules $(FRESH_FLAG)
	@$(VENV)/bin/dphpe sweep --preset $(PRESET) --jobs $(JOBS) $(FRESH_FLAG)
	@$(VENV)/bin/dphpe audit --preset $(PRESET) --all --brief $(FRESH_FLAG)
	@$(VENV)/bin/dphpe bench --preset $(PRESET) --json bench/$(PRESET).json --brief
	@$(VENV)/bin/dphpe notebooks --preset $(PRESET) --out book --jobs $(JOBS)
	@echo "jupyter-book: building _build/html (warnings are errors)"
	@$(VENV)/bin/jupyter-book build . -W -n --keep-going -q
	@echo "The book: file://$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(VENV)/bin/dphpe bench --preset $(PRESET) --json bench/$(PRESET).json

clean:
	rm -rf _build book/*.ipynb
