# tenantseal: make demo, make test. Needs Go and a Docker engine; no image registry.
SHELL := /bin/bash
GO ?= go
PG_IMAGE ?= tenantseal/postgres:15-local
export TESTCONTAINERS_RYUK_DISABLED ?= true
# -short: the isolation suite, concurrency and fault tests in their short form (`make test GOTESTFLAGS=` for
# the full ones).
GOTESTFLAGS ?= -short

.PHONY: all build test fuzz demo lint bench bench-tools pg-image pgbouncer clean-containers clean-bench-containers

all: build

build:
	$(GO) build ./...

# The local PostgreSQL image, built FROM scratch from the machine's Debian postgresql-15 (installed with
# apt-get when absent). Skipped when TENANTSEAL_PG_IMAGE or TENANTSEAL_TEST_DSN is set.
pg-image:
	@if [ -z "$$TENANTSEAL_PG_IMAGE$$TENANTSEAL_TEST_DSN" ]; then bash build/pg-image/build.sh $(PG_IMAGE); fi

# pgbouncer (Debian's 1.18) for the isolation suite's pooling tests, which start their own on loopback:
# installed with apt-get when absent.
pgbouncer:
	@bash build/pgbouncer/install.sh

# Unit and integration tests with the race detector, each package on its own throwaway PostgreSQL.
# Containers are removed even when tests fail or are interrupted. The local image has the C verifier,
# which the migrations select; the packages with the elevation, TS401, rotation and isolation tests then
# run again on the plpgsql verifier (the one managed PostgreSQL runs).
PLPGSQL_PACKAGES := ./db ./migrations ./isolation ./audit ./authn
test: pg-image pgbouncer
	@status=0; $(GO) test -race -count=1 -timeout 12m $(GOTESTFLAGS) ./... || status=$$?; \
	if [ $$status -eq 0 ]; then echo "again on the plpgsql verifier:"; \
		TENANTSEAL_TEST_VERIFIER=plpgsql $(GO) test -race -count=1 -timeout 6m $(GOTESTFLAGS) $(PLPGSQL_PACKAGES) || status=$$?; fi; \
	if [ $$status -eq 0 ]; then $(MAKE) --no-print-directory fuzz || status=$$?; fi; \
	$(MAKE) --no-print-directory clean-containers; exit $$status

# Every fuzz target of the parsers and decoders, FUZZTIME each (make test runs them briefly).
FUZZTIME ?= 5s
FUZZ_TARGETS := ./internal/uuid:FuzzParseUUID ./db:FuzzParseContextKey ./keys:FuzzDecrypt \
	./keys:FuzzUnwrapKeyset ./lint/internal/nodetree:FuzzParse ./internal/dsn:FuzzParse ./authn:FuzzParseClaims ./lint:FuzzAdmits \
	./keys:FuzzWrappedKeys ./audit:FuzzOpenCheckpoint ./retention:FuzzParseAge
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		ok=0; for try in 1 2; do \
			if $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/tenantseal-fuzz.log 2>&1; then ok=1; break; fi; \
			grep -q 'Failing input written' /tmp/tenantseal-fuzz.log && break; \
			grep -q 'context deadline exceeded' /tmp/tenantseal-fuzz.log || break; \
			echo "fuzz $$fn: the fuzzing engine stalled at its deadline without a failing input; once more"; \
		done; \
		[ $$ok -eq 1 ] || { cat /tmp/tenantseal-fuzz.log; echo "fuzz $$fn failed"; exit 1; }; \
		echo "fuzz $$fn: $(FUZZTIME), no failure"; \
	done

# The isolation demo on its own throwaway PostgreSQL: the development binary starts the container (the
# shipped cmd/tenantseal links no container library: `tenantseal demo --dsn ...` runs on a server of yours).
demo: pg-image
	@status=0; $(GO) run ./internal/cmd/tenantseal-dev demo || status=$$?; \
	$(MAKE) --no-print-directory clean-containers; exit $$status

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0 -version >/dev/null 2>&1; then \
		$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0 ./...; \
	else echo "staticcheck unavailable from the module proxy: skipped"; fi

# pgbench for bench's server-only variants and valgrind for its instruction counts, installed with
# apt-get when absent (the benchmark goes on without them otherwise).
bench-tools:
	@bash build/bench/install.sh

# Go benchmarks against a real PostgreSQL.
# Go micro-benchmarks (keys, repositories, audit writer), then the side-by-side harness on its own
# PostgreSQL: results in bench-results/ (results.md, results.json, chart.svg). BENCHFLAGS passes flags
# to `tenantseal bench`, e.g. BENCHFLAGS="--tenants 100 --rounds 1".
BENCHFLAGS ?=
# The packages with Go benchmarks: building every package's test binary to run none would cost a minute.
BENCHPKGS = $(sort $(patsubst %/,./%,$(dir $(shell grep -rl --include='*_test.go' '^func Benchmark' . 2>/dev/null | sed 's|^\./||'))))
bench: pg-image pgbouncer bench-tools
	@status=0; $(GO) test -run '^$$' -bench . -benchtime 500ms -benchmem -count 1 $(BENCHPKGS) || status=$$?; \
	if [ $$status -eq 0 ]; then $(GO) run ./internal/cmd/tenantseal-dev bench --out bench-results $(BENCHFLAGS) || status=$$?; fi; \
	$(MAKE) --no-print-directory clean-bench-containers; exit $$status

# Leftovers of a killed run (no reaper container can be pulled here).
clean-containers:
	@ids=$$(docker ps -aq --filter label=dev.tenantseal.harness 2>/dev/null); \
	if [ -n "$$ids" ]; then docker rm -f $$ids >/dev/null; fi; \
	docker network prune -f --filter label=dev.tenantseal.harness >/dev/null 2>&1 || true

# Leftovers of a killed benchmark: its servers carry a label of their own, so that a `make test` on the
# same machine does not remove them mid-run (nor a benchmark the test servers).
clean-bench-containers:
	@ids=$$(docker ps -aq --filter label=dev.tenantseal.bench 2>/dev/null); \
	if [ -n "$$ids" ]; then docker rm -f $$ids >/dev/null; fi
