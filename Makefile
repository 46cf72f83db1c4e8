# Two commands for a newcomer on a fresh Debian machine:
#   make run   sets up .venv and runs the embedded pipeline on the default example
#   make test  sets up and runs the whole test suite (Docker tests included where an engine can run)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXAMPLE ?= models/mnist_cnn/mnist_cnn.py
export TF_CPP_MIN_LOG_LEVEL ?= 3
export KERAS_HOME ?= $(CURDIR)/.cache/keras
export MPLBACKEND ?= Agg

.PHONY: setup run test test-fast bench mutation clean lint-jenkinsfile dist browser-ready

$(STAMP): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[keras,docker,jenkins,farm,dev]'
	touch $(STAMP)

# The test suite also needs MLflow (a real tracking server) and optuna-dashboard; `make run` does not.
TEST_STAMP := $(VENV)/.test-extras-stamp
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[keras,torch,docker,jenkins,farm,dev,tracking,dashboard]'
	touch $(TEST_STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/mlci run $(EXAMPLE) --home .mlci

# ---- docker engine and images (issue 5) ----
# docker-ready: engine (installed and started as root), base image, mlci images; reuses what exists.
# With CI=true a failure fails the build; elsewhere (no root) a notice, and the docker tests skip.
.PHONY: docker-ready images

docker-ready: setup
	scripts/docker-ready.sh $(BIN)/mlci

images: setup
	$(BIN)/mlci images build

# ---- end docker ----

# browser-ready: Debian's chromium for the report tests (installed as root; see the script).
browser-ready:
	scripts/browser-ready.sh

# postgres-ready: a PostgreSQL cluster from Debian's package for the farm tests (issue 15).
.PHONY: postgres-ready

postgres-ready:
	scripts/postgres-ready.sh

test: setup $(TEST_STAMP) docker-ready browser-ready postgres-ready
	$(BIN)/pytest

test-fast: setup $(TEST_STAMP) browser-ready
	$(BIN)/pytest -m "not slow and not docker"

bench: setup
	$(BIN)/python bench/overhead.py

# the mutation score of the core (docs/testing.md): minutes of CPU, never part of `make test` or CI
mutation: setup
	$(BIN)/pip install -q -e '.[mutation]'
	nice -n 15 $(BIN)/python bench/mutation.py $(MODULES)

# sdist and wheel in dist/ (docs/install.md): what an agent installs instead of a clone.
dist: setup
	$(BIN)/python -m build --no-isolation --outdir dist .

lint-jenkinsfile:
	scripts/lint-jenkinsfile.sh Jenkinsfile

clean:
	rm -rf .mlci .pytest_cache build dist src/*.egg-info
