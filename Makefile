# vlm_nb: the README's two commands are `make reproduce` and `make test`; both set up .venv on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vlm_nb-installed
STUDY ?= r3
PROFILE ?= tiny
# pytest-xdist workers; each takes whole test files, so a module's fixture is built once (`make test TEST_WORKERS=1`: serial)
TEST_WORKERS ?= 2

# No model or dataset hub is reachable here: fail a hub lookup at once instead of retrying for ~45 s.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install reproduce test check-sync nbtest pytest lab bench export readme

$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name vlm_nb --display-name "Python 3 (vlm_nb)"
	touch $(STAMP)

install: $(STAMP)

## The main job: run a study on the embedded tiny default (executed notebooks under runs/, figures under figures/)
reproduce: install
	$(BIN)/vlm_nb reproduce --study $(STUDY) --profile $(PROFILE)

## The tests: notebooks clean and library in sync, notebook tests, then integration tests
test: install check-sync nbtest pytest

check-sync: install
	@PATH="$(abspath $(BIN)):$$PATH" bash .ci/check_sync.sh

nbtest: install
	MPLBACKEND=Agg $(BIN)/python .ci/nbtest.py --jobs 2

pytest: install
	$(BIN)/python -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile --durations=20

## Developer helpers
export: install
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean && $(MAKE) readme

readme: install
	$(BIN)/jupyter nbconvert --log-level WARN --to markdown nbs/index.ipynb --output-dir . --output README

lab: install
	$(BIN)/jupyter lab --notebook-dir=. --MultiKernelManager.default_kernel_name=vlm_nb $(if $(filter 0,$(shell id -u)),--allow-root)

bench: install
	MPLBACKEND=Agg $(BIN)/python bench/run.py

## The docs site without Quarto (Sphinx + myst-nb): library notebooks executed (cached), latest run of each study; docs/_build/html
DOCS_JOBS ?= 2
.PHONY: docs
docs: install
	$(BIN)/python docs/build.py --jobs $(DOCS_JOBS)

## The tiny base models: built once per machine, cached under data/models by their spec, with held-out scores
.PHONY: models
models: install
	$(BIN)/vlm_nb models build
