# The two commands a newcomer needs: `make run` and `make test`. Both install what is missing
# first (scripts/bootstrap.sh: Debian packages by name, then .venv) and are quick the second time.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= assets/config/demo.toml

.PHONY: run test bootstrap lint bench translations clean

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	@bash scripts/run-kiosk.sh $(CONFIG)

test: bootstrap
	@bash scripts/run-tests.sh

lint: bootstrap
	@$(VENV)/bin/ruff check .

bench: bootstrap
	@$(PY) bench/startup.py

translations: bootstrap
	@$(PY) scripts/update-translations.py && $(VENV)/bin/pybabel -q compile -d kiosk/locale -D kiosk

clean:
	rm -rf var .pytest_cache tests/.out
