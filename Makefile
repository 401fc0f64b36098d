# contend — the lab's commands. `make help` lists them.
#
# Two commands matter on a fresh machine:
#   make bench   runs the lab: benchmarks, statistics, charts -> results/
#   make test    runs the tests: gofmt, go vet, every test under -race

GO      ?= go
PKGS    ?= ./...
# Tests run under the race detector; the stress tests start 100 goroutines
# at GOMAXPROCS 1, 2 and 8. On this 2-core machine the suite takes minutes.
TESTFLAGS ?= -race -count=1 -timeout 30m

.PHONY: help test servers fmt-check vet deadlock race stress bench bench-quick bench-check

help:
	@echo "make test         gofmt check, go vet, all tests with -race (what CI runs)"
	@echo "make bench        full benchmark run (CPU=1,2,4,8 COUNT=10, ~20 min here) and report -> results/"
	@echo "make bench-quick  smoke benchmark run (< 3 minutes) -> results/"
	@echo "make bench-check  measure the performance targets (ratios, 10 interleaved passes) and fail if one is missed"
	@echo "make race         show the race detector catching the naive control"
	@echo "make deadlock     show the deadlock demonstrations (lock order, self-deadlock, reentrancy)"
	@echo "make stress       long stress run (20x the default durations)"

# Modules of their own under examples/, outside ./...: each checks code
# written outside the lab with package contendtest, through a replace
# directive, as another module would.
EXAMPLES ?= examples/mylib

test: fmt-check vet servers
	$(GO) test $(TESTFLAGS) $(PKGS)
	@for m in $(EXAMPLES); do echo "cd $$m && $(GO) test $(TESTFLAGS) ./..."; (cd $$m && $(GO) test $(TESTFLAGS) ./...) || exit 1; done

# The remote tier's tests start their own servers (Redis, ZooKeeper, etcd);
# this installs each backend's server from Debian's packages when it is
# missing. A backend's CONTEND_SKIP_<NAME>=1 skips it instead (documented;
# CI never sets one).
servers:
	./scripts/install-servers.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# The race demonstration is expected to fail: the naive control races.
# This target succeeds when the race detector reports it.
race:
	@echo "Running the naive (unsynchronised) counter and bucket under -race..."
	@out=$$(CONTEND_RACE_DEMO=1 $(GO) test -race -count=1 -run '^TestRaceDemo$$' ./harness 2>&1); \
	echo "$$out"; \
	if echo "$$out" | grep -q 'WARNING: DATA RACE'; then \
		echo; echo "make race: the race detector flagged the naive control, as it should."; \
	else \
		echo; echo "make race: expected a DATA RACE report and got none"; exit 1; \
	fi

# The deadlock demonstrations, verbose, for a reader: each asserts its
# outcome within a bounded time (they also run in make test).
deadlock:
	$(GO) test -count=1 -run '^TestDeadlock' -v ./harness

stress:
	CONTEND_STRESS=long $(GO) test -race -count=1 -timeout 60m -run 'Stress' -v ./harness ./impls/...

bench: servers
	./scripts/bench.sh full

bench-quick: servers
	./scripts/bench.sh quick

# Performance targets as ratios within one run; not part of make test.
bench-check:
	./scripts/bench-check.sh
