# Reproduce everything: `make all` builds the figures, `make test` runs the tests.
# Both create a virtual environment (.venv) and install the project first,
# unless PYTHON points at an existing interpreter or a virtualenv is active.
#
#   make all                      # figures at the default profile (quick on CPU, full with a GPU)
#   make all PROFILE=smoke        # a few minutes: checks the pipeline end to end
#   make all PROFILE=deep         # the CPU profile that decides the trained claims (`make plan PROFILE=deep`)
#   make test PYTHON=/opt/env/bin/python   # use an environment you already have

SHELL := /bin/bash
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)

VENV ?= .venv
ifdef PYTHON
  PY := $(PYTHON)
else ifdef VIRTUAL_ENV
  PY := $(VIRTUAL_ENV)/bin/python
else
  PY := $(VENV)/bin/python
endif

# Kept if torch is already importable; otherwise installed before the project so that
# resolution never reaches for the newest (CUDA, several GB) build on a CPU machine.
TORCH_SPEC ?= $(if $(HAS_GPU),torch,torch==2.13.0)
PROFILE ?= $(if $(HAS_GPU),full,quick)
WORKERS ?= 2
export OMP_NUM_THREADS ?= 1
# smoke: the notebooks' small Monte Carlo too
ifeq ($(PROFILE),smoke)
  export THEORY_FAST := 1
endif

STAMP := .make/installed-$(subst /,_,$(PY))
SOURCES := $(shell find experiments synthetic -name '*.py' -not -path '*/sweeps/*')
FIG_DIR := paper_figs/$(PROFILE)
SWEEPS := mqar_pairs mqar_mixing mqar_width stability heads alignment_aer memory long_context copying_length length_gen sinks
FIGURES := $(SWEEPS:%=$(FIG_DIR)/%.png) $(FIG_DIR)/speed.png
LEDGER := $(if $(filter smoke,$(PROFILE)),$(FIG_DIR)/CLAIMS.md,paper_figs/CLAIMS.md)
BENCH_ARGS := --batch 2 $(if $(filter smoke,$(PROFILE)),--lengths 32 64 --repeats 1,--lengths 128 512 --repeats 3)
# smoke: the three R4 compares (each case is a fresh process, seconds of start-up apiece)
BENCH_VARIANTS := $(if $(filter smoke,$(PROFILE)),rela_g sparsemax entmax15,rela_g rela_i relu sparsemax entmax15 sigmoid linear)
THEORY := $(filter-out theory/_%,$(wildcard theory/*.py))
NOTEBOOK_DIR := $(if $(filter smoke,$(PROFILE)),$(FIG_DIR)/theory,paper_figs/theory)
NOTEBOOKS := $(patsubst theory/%.py,$(NOTEBOOK_DIR)/%.html,$(THEORY))

BENCH_OUT := benchmarks/scaling_$(if $(HAS_GPU),gpu,cpu).json

REPORT := $(FIG_DIR)/index.html

# nvidia-smi decides the default profile, torch decides the device a run trains on: when they disagree
# (a GPU, but this interpreter's torch has no CUDA) the full profile would run, for days, on the CPU.
# Expanded only when a sweep or benchmark is about to run; $(error) stops make with that one line.
CUDA_IN_TORCH = $(shell $(PY) -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null)
DEVICE_MISMATCH := nvidia-smi lists a GPU but the torch of $(PY) cannot use CUDA, so PROFILE=full would \
  train on the CPU: use PYTHON=<an interpreter whose torch has CUDA>, or PROFILE=quick

.PHONY: help all figures notebooks ledger report analysis test setup clean clean-results bench lr-search check-device kernels plan

help:  ## list the targets
	@echo "make all      build every figure (PROFILE=$(PROFILE); smoke|quick|deep|full)"
	@echo "make figures  the experiment figures only"
	@echo "make ledger   the claims ledger ($(LEDGER)); needs the figures and notebooks"
	@echo "make report   one offline page of every claim, its figures, runs and notebook -> $(REPORT)"
	@echo "make notebooks  execute every theory notebook (full Monte Carlo) to .ipynb + .html, with its figures"
	@echo "make analysis  docs/analysis.py on this profile's results: a sweep as a table, grouped and plotted"
	@echo "make test     run the test suite"
	@echo "make bench    time and memory against length for every variant and form, training throughput"
	@echo "              -> $(BENCH_OUT) (+ .md table, .png plot); 17 min measured on the 2-core CPU"
	@echo "make plan     what PROFILE=$(PROFILE) would run: runs, steps, FLOPs, estimated time on this device"
	@echo "make kernels  compile every Triton kernel for sm_80/sm_90 (no GPU needed) -> benchmarks/triton_compile.md"
	@echo "make lr-search  the learning-rate search the sweeps' recipe cites -> paper_figs/lr_search/ (committed)"
	@echo "make setup    create .venv and install the project (done by the others)"
	@echo "make clean    remove figures built for PROFILE and the install stamp"
	@echo "make clean-results  also remove the result cache (results/)"
	@echo "variables: PYTHON=<interpreter> PROFILE=$(PROFILE) WORKERS=$(WORKERS) TORCH_SPEC='$(TORCH_SPEC)'"

all: figures notebooks ledger report analysis

report: $(REPORT)

# Nothing runs: each sweep's runs, steps, FLOPs and estimated wall time at PROFILE on this device
# (to plan for another card: PLAN_FLAGS='--device-name "NVIDIA H100 80GB HBM3"').
plan: $(STAMP)
	$(PY) -m experiments.plan --profile $(PROFILE) --workers $(WORKERS) --sweeps $(SWEEPS) $(PLAN_FLAGS)

# Every Triton kernel compiled for sm_80 and sm_90 (no GPU needed): registers, spills, shared memory.
kernels: benchmarks/triton_compile.md

benchmarks/triton_compile.md: experiments/kernel_compile.py experiments/attention/_elementwise_triton.py \
  experiments/attention/_elementwise_spec.py | $(STAMP)
	env -u TRITON_INTERPRET $(PY) -m experiments.kernel_compile --out $@ --workers $(WORKERS)

check-device:
	$(if $(and $(HAS_GPU),$(filter full,$(PROFILE))),$(if $(filter 1,$(CUDA_IN_TORCH)),,$(error $(DEVICE_MISMATCH))))
	@:

bench: $(STAMP) | check-device  ## always reruns: timings are measurements, not build products
	$(PY) -m experiments.bench_scaling --out $(BENCH_OUT) $(BENCH_FLAGS)

ledger: $(LEDGER)

figures: $(FIGURES)

setup: $(STAMP)

$(VENV)/bin/python:
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(if $(or $(PYTHON),$(VIRTUAL_ENV)),,$(VENV)/bin/python)
	@mkdir -p .make
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > .make/torch-constraint.txt
	$(PY) -m pip install -c .make/torch-constraint.txt -e '.[dev,notebooks]'
	@touch $@

# The tests spread over WORKERS processes (pytest-xdist), each with one torch thread; a file's tests stay on one
# worker, so a module's fixture (the smoke report's make run) is built once.
test: $(STAMP)
	$(PY) -m pytest -n $(WORKERS) --dist loadfile tests

# The learning-rate search behind the recipe (experiments/sweeps/_common.py); its quick table is committed,
# so `make all` does not run it. tests/test_recipe.py checks the recipe still matches the table.
LR_DIR := paper_figs/lr_search
lr-search: $(LR_DIR)/$(PROFILE).md

$(LR_DIR)/$(PROFILE).csv: experiments/sweeps/lr_search.py experiments/sweeps/_common.py $(SOURCES) | $(STAMP) check-device
	$(PY) -m experiments.sweep lr_search --profile $(PROFILE) --workers $(WORKERS) --csv $@

$(LR_DIR)/$(PROFILE).md: $(LR_DIR)/$(PROFILE).csv
	$(PY) -m experiments.sweeps.lr_search $< $@

# One CSV per sweep: runs whatever is not in the result cache, then collects.
$(FIG_DIR)/%.csv: experiments/sweeps/%.py $(SOURCES) | $(STAMP) check-device
	$(PY) -m experiments.sweep $* --profile $(PROFILE) --workers $(WORKERS) --csv $@

# One plot script per figure; editing it rebuilds the figure (and nothing else).
$(FIG_DIR)/%.png: $(FIG_DIR)/%.csv paper_figs/plot_%.py paper_figs/_plot.py paper_figs/_rows.py | $(STAMP)
	$(PY) -m paper_figs.plot_$* $< $@

# Speed (R4): forward+backward time of the variants ReLA compares, relative to softmax, one run.
$(FIG_DIR)/speed.json: experiments/bench_scaling.py $(SOURCES) | $(STAMP) check-device
	$(PY) -m experiments.bench_scaling --out $@ --cases defaults --no-training --no-plot $(BENCH_ARGS) \
	  --only $(BENCH_VARIANTS)

$(FIG_DIR)/speed.png: $(FIG_DIR)/speed.json paper_figs/plot_speed.py paper_figs/_plot.py | $(STAMP)
	$(PY) -m paper_figs.plot_speed $< $@

$(LEDGER): $(SWEEPS:%=$(FIG_DIR)/%.csv) $(FIG_DIR)/speed.json $(NOTEBOOKS) $(wildcard paper_figs/claims*.py) paper_figs/_judging.py \
  paper_figs/_rows.py paper_figs/_ledgers.py paper_figs/make_ledger.py $(wildcard paper_figs/ledger_*_*.md)
	$(PY) -m paper_figs.make_ledger --profile $(PROFILE) --sweeps $(FIG_DIR) --theory $(NOTEBOOK_DIR)/verdicts \
	  --speed $(FIG_DIR)/speed.json --committed paper_figs --out $@

# The report page: the ledger's evidence, figures and notebooks, and copies of the runs it cites.
$(REPORT): $(LEDGER) $(FIGURES) paper_figs/report.py | $(STAMP)
	$(PY) -m paper_figs.report --profile $(PROFILE) --figures $(FIG_DIR) --theory $(NOTEBOOK_DIR) --out $@

.PRECIOUS: $(FIG_DIR)/%.csv $(NOTEBOOK_DIR)/%.ipynb

notebooks: $(NOTEBOOKS)

# A theory notebook is a percent-format script: jupytext makes the .ipynb, nbconvert executes it
# (its figures and verdicts land in $(NOTEBOOK_DIR)), and theory/_html.py renders the HTML with its math
# as MathML, so the page fetches nothing.
$(NOTEBOOK_DIR)/%.ipynb: theory/%.py theory/_mc.py $(SOURCES) | $(STAMP)
	@mkdir -p $(NOTEBOOK_DIR)
	$(PY) -m jupytext --quiet --to ipynb --output $@.tmp.ipynb $<
	PYTHONPATH=$(CURDIR) THEORY_OUT=$(abspath $(NOTEBOOK_DIR)) \
	  $(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1800 \
	  $@.tmp.ipynb || { rm -f $@.tmp.ipynb; exit 1; }
	mv $@.tmp.ipynb $@

$(NOTEBOOK_DIR)/%.html: $(NOTEBOOK_DIR)/%.ipynb theory/_html.py
	$(PY) -m theory._html $< $@

# docs/analysis.py, a sweep's results loaded as a table, grouped and plotted, executed on this profile's results.
analysis: $(FIG_DIR)/analysis.html

$(FIG_DIR)/analysis.ipynb: docs/analysis.py $(FIG_DIR)/mqar_pairs.csv experiments/results.py | $(STAMP)
	$(PY) -m jupytext --quiet --to ipynb --output $@.tmp.ipynb $<
	PYTHONPATH=$(CURDIR) PROFILE=$(PROFILE) RESULTS_DIR=$(abspath $(or $(RESULTS_DIR),results)) \
	  $(PY) -m jupyter nbconvert --to notebook --execute --inplace $@.tmp.ipynb || { rm -f $@.tmp.ipynb; exit 1; }
	mv $@.tmp.ipynb $@

$(FIG_DIR)/analysis.html: $(FIG_DIR)/analysis.ipynb theory/_html.py
	$(PY) -m theory._html $< $@

clean:
	rm -rf $(FIG_DIR) $(NOTEBOOK_DIR) .make

clean-results: clean
	rm -rf results
