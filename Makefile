# The two commands a newcomer needs: `make run` and `make test`. Both install what is missing
# first (scripts/bootstrap.sh: Debian packages by name, then .venv) and are quick the second time.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= assets/config/demo.toml

.PHONY: run test bootstrap lint bench translations clean verify-units

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	@bash scripts/run-kiosk.sh $(CONFIG)

test: bootstrap
	@bash scripts/run-tests.sh

lint: bootstrap
	@$(VENV)/bin/ruff check .

# The appliance's systemd units: systemd-analyze verify and security on a root where
# systemd/install.sh put them, the health check, the notify/watchdog protocol (no Kivy needed).
verify-units: bootstrap
	@$(VENV)/bin/pytest -q -m "not ui" tests/systemd

bench: bootstrap
	@$(PY) bench/startup.py

translations: bootstrap
	@$(PY) scripts/update-translations.py && $(VENV)/bin/pybabel -q compile -d kiosk/locale -D kiosk

clean:
	rm -rf var .pytest_cache tests/.out image-build/out image-build/.cache

# The disk image: `make image`, `make test-image` (image-build/README.md).
include image-build/image.mk
