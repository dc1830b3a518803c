# Two commands: `make run` (set up + run the default study) and `make test` (set up + run the tests).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Data: ../shared/data when it exists (offline here); else $SYNTHMED_DATA_DIR if you set it, else the
# medmnist cache (~/.medmnist), where `synthmed run` downloads missing files (MD5-checked). ARGS=--offline never downloads.
ifneq ($(wildcard ../shared/data/.),)
export SYNTHMED_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: setup run test bench clean

$(BIN)/synthmed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,ray,domain-aug]'
	$(BIN)/pip install -q --no-deps medmnistc==0.1.0  # its pins (medmnist 3.0.1, scikit-image 0.23.2) are not needed: see pyproject
	touch $(BIN)/synthmed

setup: $(BIN)/synthmed

run: setup
	$(BIN)/synthmed run $(ARGS)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
