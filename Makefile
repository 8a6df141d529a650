# zio: build, test, bench and demo entry points. `make test` is what CI runs.
CARGO ?= cargo

.PHONY: all build deps lint test unit integration soak regress apps bench crate-costs demo results install uninstall clean

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
# zio-run and zio-stat to bin/ with their manual pages and bash, zsh and
# fish completions (each tool prints its own); zio-run finds
# ../lib/libzio.so from itself. DESTDIR=DIR stages the same tree under DIR.
PREFIX ?= /usr/local
TOOLS := zio-run zio-stat
D := $(DESTDIR)$(PREFIX)
install: build
	install -d $(D)/lib $(D)/include $(D)/bin $(D)/share/man/man1 \
		$(D)/share/bash-completion/completions $(D)/share/zsh/site-functions \
		$(D)/share/fish/vendor_completions.d
	install -m 0755 target/release/libzio.so $(D)/lib/libzio.so
	install -m 0644 libzio/include/zio.h $(D)/include/zio.h
	for t in $(TOOLS); do \
		install -m 0755 target/release/$$t $(D)/bin/ && \
		target/release/$$t --man > $(D)/share/man/man1/$$t.1 && \
		target/release/$$t --completions bash > $(D)/share/bash-completion/completions/$$t && \
		target/release/$$t --completions zsh > $(D)/share/zsh/site-functions/_$$t && \
		target/release/$$t --completions fish > $(D)/share/fish/vendor_completions.d/$$t.fish \
		|| exit 1; \
	done

uninstall:
	rm -f $(D)/lib/libzio.so $(D)/include/zio.h
	for t in $(TOOLS); do \
		rm -f $(D)/bin/$$t $(D)/share/man/man1/$$t.1 \
			$(D)/share/bash-completion/completions/$$t \
			$(D)/share/zsh/site-functions/_$$t $(D)/share/fish/vendor_completions.d/$$t.fish; \
	done

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

# The crates zio does not use (redhook, userfaultfd, once_cell,
# crossbeam-skiplist), measured against what it does instead
# (benches/crates, a workspace of its own; needs valgrind and libclang).
# About a minute.
crate-costs: build
	python3 scripts/crate_costs.py > docs/results/crates.txt.new
	mv docs/results/crates.txt.new docs/results/crates.txt
	cat docs/results/crates.txt

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
