# The workshop companion's commands. `make` (or `make help`) lists them.
# The two that matter: `make run` (execute every notebook into build/) and `make test`
# (everything CI checks). Both bootstrap a fresh clone: setup, then data, when needed.
# VENV=<prefix> uses an existing environment (e.g. VENV=$CONDA_PREFIX) instead of .venv.

PYTHON ?= python3
PORT ?= 8765
VENV ?= .venv
PY := $(VENV)/bin/python
export PORT

.DEFAULT_GOAL := help
.PHONY: help setup data serve stop status run test lab outputs student bench clean

help: ## list the targets
	@echo "Targets (see README.md):"
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z]+):.*## (.*)/  make \1\t\2/' | expand -t 16

setup: ## system packages (root on Debian/Ubuntu) and .venv with the pinned packages
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh

data: setup ## generate the offline Rhodes catalogue into data/ (skipped when up to date)
	@$(PY) -m helpers.synthetic

serve: data ## start the embedded STAC API on 127.0.0.1:PORT (default 8765) in the background
	@$(PY) -m helpers.server start --port $(PORT)

stop: ## stop the embedded STAC API and its database
	@$(PY) -m helpers.server stop

status: ## say what runs where
	@$(PY) -m helpers.server status

run: serve ## execute every notebook against the embedded API into build/
	@$(PY) -m helpers.notebooks run -p api_url=http://127.0.0.1:$(PORT)

test: data ## everything CI checks: unit tests, notebooks under papermill and nbval
	@$(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg \
		--nbval-cell-timeout 900 --durations 15

lab: serve ## open JupyterLab on the notebooks
	@$(VENV)/bin/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks

outputs: serve ## re-execute the notebooks in place (the outputs committed with them)
	@$(PY) -m helpers.notebooks outputs

student: setup ## learner copies without solutions, in build/student/
	@$(PY) -m helpers.notebooks student

bench: serve ## run benchmarks/ and write the figures to build/bench/
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean: ## stop the server, delete its database, remove build/ and the generated data (keeps .venv and the committed vector files)
	-@$(PY) -m helpers.server reset
	rm -rf build
	git clean -fdX data
