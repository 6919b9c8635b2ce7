PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
# One process with threads: the in-memory rate limits stay exact. More
# processes need RATELIMIT_STORAGE_URI=redis://... (see README, Production).
WORKERS ?= 1
THREADS ?= 4
BIN = $(VENV)/bin

.PHONY: run test install install-dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.txt
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/flask --app wsgi db upgrade
	exec $(BIN)/gunicorn --workers $(WORKERS) --threads $(THREADS) --bind $(HOST):$(PORT) \
		--access-logfile - --error-logfile - wsgi:app

test: install-dev
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .

bench: install-dev
	$(BIN)/python bench/seed.py
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
