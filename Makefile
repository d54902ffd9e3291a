# paper-repro: every command a user or CI needs. Two do all the set-up on a fresh machine:
#   make book   create .venv if missing, build the rendered book at demo scale into _build/html/
#   make test   create .venv if missing, run pytest (tests/) and nbval (book/ chapters at smoke scale)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The environment is rebuilt when pyproject.toml, the lock file or this Makefile changes. Every package
# is installed at the version of requirements.lock (pip constraints): the versions CI passed with.
STAMP := $(VENV)/.paper-repro-installed
LOCK := requirements.lock
TORCH := torch==2.14.1 torchvision==0.29.1
export PAPER_REPRO_CACHE ?= $(CURDIR)/.cache
# OpenMP's default busy-waiting makes two torch threads crawl when the cores are shared
# (one FastFlow step measured 20.7 s busy-waiting vs 0.48 s passive under load).
export OMP_WAIT_POLICY ?= PASSIVE
SCALE ?= demo

.PHONY: env lock book test test-fast reproduce bench gpu-check clean help

help:
	@echo "make book       build the book (scale $(SCALE)) into _build/html/"
	@echo "make test       pytest + nbval, the command CI runs"
	@echo "make reproduce  SCALE=smoke|demo|full: run every chapter, tables into results/<scale>/"
	@echo "make bench      run the benchmarks in benchmarks/"
	@echo "make gpu-check  on a GPU machine: every trainer's full-geometry step timed (benchmarks/gpu_check.py)"
	@echo "make lock       write the installed versions to requirements.lock (after CI passes with them)"

env: $(STAMP)

$(STAMP): pyproject.toml Makefile $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) $(TORCH)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[book,test,baselines,export]'
	@touch $@

lock: $(STAMP)
	@head -2 $(LOCK) > $(LOCK).new
	$(BIN)/python -m pip freeze --exclude-editable >> $(LOCK).new
	@mv $(LOCK).new $(LOCK) && echo "wrote $(LOCK)"

# Chapters the execution cache lacks run first, one per core, each printing its time; Jupyter Book then
# renders from the cache (python -m paper_repro book --help). JOBS=1 runs them one after another.
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
book: $(STAMP)
	$(BIN)/python -m paper_repro book --scale $(SCALE) --jobs $(JOBS)
	@test -f _build/html/index.html && echo "book: _build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest tests book --nbval-lax --nbval-current-env \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -x -q

reproduce: $(STAMP)
	$(BIN)/python -m paper_repro reproduce --scale $(SCALE) --out results/$(SCALE)

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# On a GPU machine, before the first full run: every trainer's step at full geometry, images/s, share of peak
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf _build .cache
