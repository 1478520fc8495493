# One command per CI step; `make ci` (or .ci/run, which also starts the databases) runs them all.
# The first target run on a bare clone creates .venv and installs the package with its dev and
# factories extras (Faker: the example app's seeders and the factory tests); it reinstalls
# whenever pyproject.toml or this file changes.

PYTHON = python3
VENV = .venv
PY = $(VENV)/bin/python
STAMP = $(VENV)/.make-stamp
BENCH_STAMP = $(VENV)/.make-bench-stamp
LINT_PATHS = lucid_orm tests examples bench scripts
# Git keeps no empty directories, so lint only the paths this checkout has.
EXISTING_LINT_PATHS = `for p in $(LINT_PATHS); do [ -e $$p ] && echo $$p; done`

DOCS_STAMP = $(VENV)/.make-docs-stamp
MIN_VENV = .venv-min
MIN_STAMP = $(MIN_VENV)/.make-stamp
# What `make test-min` runs on the lowest allowed versions: the database, ORM, relation,
# migration and unit tests on SQLite (~1 min). Not the tooling, docs and example-app tests (they
# need the dev extras), test_db_errors.py (it imports the server drivers, absent here) nor
# test_instrumentation.py (the OpenTelemetry SDK).
MIN_TESTS = tests/unit tests/database tests/orm tests/relations tests/migrations \
	--ignore=tests/database/test_db_errors.py --ignore=tests/database/test_instrumentation.py

.PHONY: install demo test test-cluster test-slow-paths test-min package-check lint typecheck fmt docs ci clean bench

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,factories]'
	touch $(STAMP)

# The example app (examples/blog): migrate, seed and tour a fresh embedded SQLite database.
demo: $(STAMP)
	$(PY) examples/blog/main.py

# The whole suite, against SQLite, PostgreSQL and MariaDB (see .ci/run for the servers), spread
# over the cores by pytest-xdist: each worker runs on databases of its own (tests/helpers.py).
# One file or test: $(PY) -m pytest tests/orm/test_crud.py (no -n: one process).
# (tests/cluster is `make test-cluster`'s: it stops and starts servers.)
test: $(STAMP)
	$(PY) -m pytest -q -n auto --ignore=tests/cluster

# The scale-out tests against real replication (tests/cluster, docs/scaling_out.md):
# scripts/cluster up starts a PostgreSQL hot standby of the main server (port 5433) and a
# three-node MariaDB Galera cluster (3307-3309) unless they run already (~15 s from nothing),
# then the tests run in one process (they stop and start those servers). The servers stay up
# for the next run; `scripts/cluster down` stops them and removes their data (.ci/run does).
CLUSTER_DIR = $${LUCID_CLUSTER_DIR:-/var/tmp/lucid-cluster}
test-cluster: $(STAMP)
	scripts/cluster up >/dev/null
	set -a && . $(CLUSTER_DIR)/env && set +a && $(PY) -m pytest -q -p no:xdist tests/cluster

# The ORM and relation tests again with the lean read path off (LUCID_FAST_PATHS=0): every
# statement through SQLAlchemy's execution layer, proving the fast paths answer as their twins.
# (test_many_keys.py already runs its reads both ways and is the slowest file: not twice.)
test-slow-paths: $(STAMP)
	LUCID_FAST_PATHS=0 $(PY) -m pytest -q -n auto tests/orm tests/relations --ignore=tests/orm/test_many_keys.py

# The SQLite tests on the lowest versions pyproject.toml allows: a venv of its own (.venv-min)
# with every runtime dependency pinned to its floor (scripts/min_constraints.py).
test-min: $(MIN_STAMP)
	LUCID_TEST_DIALECTS=sqlite $(MIN_VENV)/bin/python -m pytest -q -p no:xdist $(MIN_TESTS)

$(MIN_STAMP): pyproject.toml Makefile scripts/min_constraints.py
	[ -x $(MIN_VENV)/bin/python ] || $(PYTHON) -m venv $(MIN_VENV)
	$(PYTHON) scripts/min_constraints.py > $(MIN_VENV)/constraints.txt
	$(MIN_VENV)/bin/python -m pip install --quiet -c $(MIN_VENV)/constraints.txt -e . \
		'pytest>=8' 'pytest-asyncio>=1.0'
	touch $(MIN_STAMP)

# The wheel, installed into a clean venv without extras, then with [postgresql] and [mysql].
package-check: $(STAMP)
	scripts/check_wheel.sh $(PY)

lint: $(STAMP)
	$(PY) -m ruff check $(EXISTING_LINT_PATHS)
	$(PY) -m ruff format --check $(EXISTING_LINT_PATHS)

# mypy on the package; mypy --strict and pyright (basedpyright) on tests/typing, where each
# planted error must be reported by both (an unused `# type: ignore` fails either run).
typecheck: $(STAMP)
	$(PY) -m mypy lucid_orm
	$(PY) -m mypy --strict tests/typing
	$(VENV)/bin/basedpyright --pythonpath $(PY) tests/typing

fmt: $(STAMP)
	$(PY) -m ruff check --fix $(EXISTING_LINT_PATHS)
	$(PY) -m ruff format $(EXISTING_LINT_PATHS)

# The documentation site (mkdocs.yml): guides from docs/, the API reference generated from the
# docstrings. Strict: a broken link, a missing page or a docstring warning fails the build.
# Preview with $(VENV)/bin/mkdocs serve.
docs: $(DOCS_STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,factories,docs]'
	touch $(DOCS_STAMP)

# The test runs last, so that the run closes on the suite's own summary line.
ci: lint typecheck docs package-check test-min test-cluster test test-slow-paths

# lucid_orm against the bare drivers and peer ORMs (the `bench` extra); rewrites
# docs/benchmarks.md and docs/benchmarks.png. Sizes: make bench BENCH_ARGS="--users 200 --repeat 3".
bench: $(BENCH_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

clean:
	rm -rf build dist site *.egg-info .mypy_cache .ruff_cache .pytest_cache $(MIN_VENV)
