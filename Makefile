# zio: build, test, bench and demo entry points. `make test` is what CI runs.
CARGO ?= cargo

.PHONY: all build deps lint test unit integration soak regress apps bench demo results install uninstall clean

all: build

build:
	$(CARGO) build --release --workspace

# Debian packages the tests use (redis-server, redis-tools, gcc, valgrind,
# liburing-dev, libjemalloc2, and the servers of make apps), when missing.
deps:
	bash scripts/deps.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# In-process tests of the mechanisms (no LD_PRELOAD).
unit:
	$(CARGO) test --release -p zio-core -p zio-run -p zio-stat

# libzio.so to $(PREFIX)/lib, zio.h (the bridge contract) to include/,
# zio-run and zio-stat to bin/; zio-run finds ../lib/libzio.so from itself.
# DESTDIR=DIR stages the same tree under DIR (packaging).
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 0755 target/release/libzio.so $(DESTDIR)$(PREFIX)/lib/libzio.so
	install -m 0644 libzio/include/zio.h $(DESTDIR)$(PREFIX)/include/zio.h
	install -m 0755 target/release/zio-run target/release/zio-stat $(DESTDIR)$(PREFIX)/bin/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libzio.so $(DESTDIR)$(PREFIX)/include/zio.h \
		$(DESTDIR)$(PREFIX)/bin/zio-run $(DESTDIR)$(PREFIX)/bin/zio-stat

# Real programs under LD_PRELOAD (needs the built libzio.so).
integration: deps build
	$(CARGO) test --release -p zio-integration

# Ordinary programs (Python, coreutils, compressors) without and with zio in
# alternation: outputs compared, the median ratio per program printed
# (scripts/regress.py; `make test` runs its --quick form). PAIRS=N pairs.
PAIRS ?= 5
regress: deps build
	python3 scripts/regress.py --pairs $(PAIRS) --csv target/regress.csv

# Real servers (Redis, nginx, HAProxy, PostgreSQL, memcached, Icecast) as their own
# users, without and with zio in alternation, data verified, one table
# (scripts/apps.py; `make test` runs its --quick form). PAIRS=N pairs (4
# unless given); APPS=redis,nginx: only those.
APPS ?=
apps: deps build
	python3 scripts/apps.py $(if $(filter command line environment,$(origin PAIRS)),--pairs $(PAIRS)) \
		--only "$(APPS)" --csv target/apps.csv --coverage target/apps-coverage.csv

# The soak (integration/tests/soak.rs) for 300 s per run instead of 6.
soak: deps build
	ZIO_SOAK_SECONDS=300 $(CARGO) test --release -p zio-integration --test soak -- --nocapture

test: deps build lint
	$(CARGO) test --release --workspace

bench: build
	$(CARGO) bench -p zio-benches

demo: deps build
	bash scripts/demo.sh

# Measures every result set of docs/results.md, then writes that page again
# (about 3 h, on an otherwise idle machine). QUICK=1: a check of the
# pipeline in about 2 minutes, into a temporary directory. OUT=DIR: elsewhere.
# SETS="regress ...": only those result sets.
# Only the page, from the files in docs/results/: python3 scripts/results.py
results:
	QUICK=$(QUICK) OUT=$(OUT) SETS="$(SETS)" bash scripts/measure-results.sh

clean:
	$(CARGO) clean
