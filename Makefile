# The two commands a newcomer runs: `make demo` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed
# PyTorch (the optional `iri` extra, CPU build) for `make test`: the tests generate IRIs for
# real. `make demo` does not need it (it seeds the committed IRI set instead).
IRI_STAMP := $(VENV)/.installed-iri

.PHONY: demo test install install-iri services browser lint typecheck pytest docs screenshots bench clean iri-demo-set

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null || { echo "H-Mix needs Python 3.11 or newer (found: $(PYTHON)); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(IRI_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,iri]'
	touch $(IRI_STAMP)

install-iri: $(IRI_STAMP)

# manage.py defaults to production settings; the demo and the checks name the local ones.
LOCAL := DJANGO_SETTINGS_MODULE=hmix_site.settings.local

# Embedded SQLite and in-process tasks unless DATABASE_URL / CELERY_BROKER_URL are set.
demo: install
	$(LOCAL) $(BIN)/python manage.py migrate --noinput
	$(LOCAL) $(BIN)/python manage.py seed_demo --base-url http://127.0.0.1:$(PORT)
	$(LOCAL) $(BIN)/python manage.py runserver --noreload 127.0.0.1:$(PORT)

services:
	bash scripts/ensure_services.sh

browser:
	bash scripts/ensure_chromium.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy .

pytest: install-iri services browser
	$(BIN)/python -m pytest -q --create-db

# The documentation site (docs/, mkdocs.yml) into build/docs; --strict fails on a broken link,
# a missing image or a missing #anchor.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Rewrite the user guide's screenshots (docs/img/) from the browser tests that take them.
screenshots: install services browser
	HMIX_DOCS_SCREENSHOTS=1 $(BIN)/python -m pytest -q -m browser \
		-k "full_journey or mouse_only_journey or (journey and mouse) or builds_previews" \
		tests/elicitation tests/dashboard

test: install-iri services browser docs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(LOCAL) $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest -q --create-db

bench: install services
	$(BIN)/python bench/participant_loop.py

# Regenerates the committed demo IRI set (iri/demo_set/, < 1 MB) from the demo shapes.
iri-demo-set: install-iri
	$(LOCAL) $(BIN)/python manage.py iri_demo_set

clean:
	rm -rf $(VENV) staticfiles media db.sqlite3* build/docs
