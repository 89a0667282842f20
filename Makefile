# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export KIZUNA_DATA_DIR ?= $(CURDIR)/var
export OMP_NUM_THREADS ?= 1

.PHONY: demo test serve lint typecheck layers pytest pytest-postgres browser messages bench clean

$(BIN)/python:
	@PY=$$(./scripts/find-python) && echo "Using $$PY" && "$$PY" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25"

$(VENV)/.runtime: $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

demo: $(VENV)/.runtime
	@mkdir -p var
	KIZUNA_ENV=dev $(BIN)/kizuna migrate --no-input -v0
	KIZUNA_ENV=dev $(BIN)/kizuna demo load --if-empty
	@echo ""
	@echo "  Kizuna is running at http://127.0.0.1:8000/"
	@echo "  Sign in as: admin / kizuna-demo   (also: manager, onboarding, adoption, expansion, viewer — same password)"
	@echo ""
	KIZUNA_ENV=dev $(BIN)/kizuna serve --port 8000

browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v msgfmt >/dev/null 2>&1 \
	    || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then \
	  echo "Installing Debian's chromium, fonts-noto-cjk and gettext for the tests"; \
	  (apt-get install -y -q chromium fonts-noto-cjk gettext >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q chromium fonts-noto-cjk gettext >/dev/null)); \
	fi
	@command -v chromium >/dev/null || { echo "chromium is missing and could not be installed"; exit 1; }
	@command -v msgfmt >/dev/null || { echo "gettext is missing and could not be installed"; exit 1; }

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

layers: $(VENV)/.dev
	$(BIN)/lint-imports

pytest: $(VENV)/.dev browser
	$(BIN)/pytest -q

# In CI, KIZUNA_TEST_DATABASE_URL names the PostgreSQL server: the suite runs there too and
# fails (is not skipped) if it cannot connect.
pytest-postgres: $(VENV)/.dev
	@if [ -n "$${KIZUNA_TEST_DATABASE_URL:-}" ]; then \
	  echo "== PostgreSQL: $$KIZUNA_TEST_DATABASE_URL"; \
	  DATABASE_URL="$$KIZUNA_TEST_DATABASE_URL" KIZUNA_EXPECT_POSTGRES=1 $(BIN)/pytest -q -m "not e2e and not spark and not live"; \
	elif [ -n "$${CI:-}" ]; then \
	  echo "CI must set KIZUNA_TEST_DATABASE_URL (the PostgreSQL tests may not be skipped)"; exit 1; \
	else echo "(KIZUNA_TEST_DATABASE_URL not set: PostgreSQL run skipped outside CI)"; fi

test: lint typecheck layers pytest pytest-postgres

messages: $(VENV)/.dev
	cd src/kizuna && DJANGO_SETTINGS_MODULE=kizuna.config.test_settings ../../$(BIN)/django-admin makemessages -l ja --no-obsolete
	cd src/kizuna && DJANGO_SETTINGS_MODULE=kizuna.config.test_settings ../../$(BIN)/django-admin compilemessages

bench: $(VENV)/.dev
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var
