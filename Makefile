# Two commands run Portico on a fresh machine: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CATALOGUES := $(wildcard portico/locale/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGUES:.po=.mo)

.PHONY: dev test lint clean messages compile-messages

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The .mo files are built, never committed (portico/i18n.py compiles a missing one in memory).
%.mo: %.po $(STAMP)
	$(BIN)/pybabel compile --statistics -D messages -i $< -o $@

compile-messages: $(COMPILED)

# After wrapping new text in _() / {% trans %}: extract it, merge it into every catalogue,
# then translate the new (empty or fuzzy) entries; tests/test_i18n_catalogues.py lists them.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output -k N_ -k _ -o portico/locale/messages.pot .
	$(BIN)/pybabel update -D messages -i portico/locale/messages.pot -d portico/locale --no-fuzzy-matching --ignore-obsolete
	$(MAKE) compile-messages

dev: $(STAMP) compile-messages
	$(BIN)/portico dev --demo

test: $(STAMP) compile-messages
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q

# The benchmark (docs/benchmarks.md): `make bench`, or `make bench BENCH_ARGS=--quick`.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var .pytest_cache $(COMPILED)
