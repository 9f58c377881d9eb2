# Two commands on a fresh machine:  `make serve` (serve the shipped models)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint install install-dev bench-model clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The service's dependencies come from the hashed lock (requirements/serve.lock, scripts/lock.sh regenerates it);
# the project itself on top, without resolving anything again.
install: $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements/serve.lock
	$(BIN)/pip install -q --no-deps -e .

# Training and test tools on top of the locked service (torch pinned in pyproject.toml).
install-dev: install
	$(BIN)/pip install -q -e '.[train,dev]'

serve: install
	$(BIN)/python -m app

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Style, types of the service and the walls between packages (pyproject.toml: [tool.ruff], [tool.mypy], [tool.importlinter]).
lint: install-dev
	$(BIN)/ruff check app training degradations cards bench tests
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
