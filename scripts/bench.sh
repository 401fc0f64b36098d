#!/usr/bin/env bash
# scripts/bench.sh full|quick: run the benchmark suite and regenerate results/.
#
#   full   make bench:       -cpu 1,2,4,8, -count 10  (about 20 minutes on 2 cores,
#                             a third of it the remote tier's fault scenarios)
#   quick  make bench-quick: -cpu 1,2,   -count 6    (about 1.5 minutes)
#
# The remote tier (every backend in harness.Backends) runs unless REMOTE=0;
# the raw file and the report say which servers ran.
#
# Overrides (environment): CPU, COUNT, BENCHTIME (throughput benchmarks),
# WAITTIME (the blocking Wait), LOCKTIME (locks and semaphores), LATENCYTIME (bucket TryTake latency),
# REMOTE (1 or 0), REMOTETIME, REMOTE_COUNT and REMOTE_CPU (remote tier; its
# GOMAXPROCS defaults to the machine's cores, which the servers share),
# CHECK_COUNT (correctness, lock latency, bucket latency and
# memory benchmarks), BENCH (regexp of families), OUT (default results).
# COUNT below 6 leaves the report without confidence intervals: benchmath
# needs 6 samples for a 95% CI of the median.
#
# Benchmark output goes to $OUT/raw/bench.txt, preceded by benchfmt
# configuration lines describing the machine. Progress goes to stderr only:
# any "key: value" line in the results file would become configuration.
set -euo pipefail

mode=${1:-full}
cd "$(dirname "$0")/.."
GO=${GO:-go}

case "$mode" in
full)
	CPU=${CPU:-1,2,4,8}
	COUNT=${COUNT:-10}
	BENCHTIME=${BENCHTIME:-500000x}
	WAITTIME=${WAITTIME:-200000x}
	CHECK_COUNT=${CHECK_COUNT:-6}
	LOCKTIME=${LOCKTIME:-20ms}
	LATENCYTIME=${LATENCYTIME:-10ms}
	REMOTETIME=${REMOTETIME:-300ms}
	REMOTE_COUNT=${REMOTE_COUNT:-6}
	;;
quick)
	CPU=${CPU:-1,2}
	COUNT=${COUNT:-6}
	BENCHTIME=${BENCHTIME:-100000x}
	WAITTIME=${WAITTIME:-20000x}
	CHECK_COUNT=${CHECK_COUNT:-6}
	LOCKTIME=${LOCKTIME:-5ms}
	LATENCYTIME=${LATENCYTIME:-5ms}
	REMOTETIME=${REMOTETIME:-50ms}
	REMOTE_COUNT=${REMOTE_COUNT:-3}
	;;
*)
	echo "usage: $0 full|quick" >&2
	exit 2
	;;
esac
BENCH=${BENCH:-Counter|Bucket|Keyed|Floor}
# Locks and semaphores run for a time, not a count: the ticket lock convoys
# when goroutines outnumber Ps (a few hundred acquisitions a second at 100
# goroutines on 2 cores), and a fixed count would take hours.
LOCKBENCH=${LOCKBENCH:-Lock|Semaphore}
LOCKTIME=${LOCKTIME:-}
OUT=${OUT:-results}
REMOTE=${REMOTE:-1}
REMOTE_CPU=${REMOTE_CPU:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)}

log() { echo "bench: $*" >&2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

log "building the benchmark binary"
"$GO" test -c -o "$tmp/harness.test" ./harness

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no -- . ':!results' 2>/dev/null)" ]; then
	commit="$commit-dirty"
fi
cpumodel=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n1)

raw="$tmp/bench.txt"
{
	echo "cpu-model: ${cpumodel:-unknown}"
	echo "cores: $(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)"
	echo "go: $("$GO" env GOVERSION)"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $commit"
	echo "mode: $mode"
} >"$raw"

# run writes benchmark output to the results file and, as progress, to stderr.
run() {
	"$tmp/harness.test" -test.run '^$' -test.benchmem "$@" | tee -a "$raw" >&2
}

start=$(date +%s)
log "throughput: -bench '$BENCH' -cpu $CPU -count $COUNT -benchtime $BENCHTIME"
echo "benchtime: $BENCHTIME" >>"$raw"
(cd harness && run -test.bench "^Benchmark($BENCH)\$" -test.cpu "$CPU" -test.count "$COUNT" -test.benchtime "$BENCHTIME")

log "waiting for tokens: -bench 'Wait/workload=unblocked' -benchtime $WAITTIME, then 'Wait/workload=paced' -benchtime 1x"
echo "benchtime: $WAITTIME" >>"$raw"
(cd harness && run -test.bench '^BenchmarkWait$/^workload=unblocked$' -test.cpu "$CPU" -test.count "$COUNT" -test.benchtime "$WAITTIME")
echo "benchtime: 1x" >>"$raw"
(cd harness && run -test.bench '^BenchmarkWait$/^workload=paced$' -test.cpu "$CPU" -test.count "$CHECK_COUNT" -test.benchtime 1x)

if [ -n "$LOCKBENCH" ]; then
	log "locks and semaphores: -bench '$LOCKBENCH' -cpu $CPU -count $COUNT -benchtime $LOCKTIME"
	echo "benchtime: $LOCKTIME" >>"$raw"
	(cd harness && run -test.bench "^Benchmark($LOCKBENCH)\$" -test.cpu "$CPU" -test.count "$COUNT" -test.benchtime "$LOCKTIME")
fi

# Bucket TryTake latency percentiles (harness/bench_bucket_latency_test.go):
# 100 goroutines for a time, like the locks' latency run.
log "bucket latency: -bench 'BucketLatency' -cpu $CPU -count $CHECK_COUNT -benchtime $LATENCYTIME"
echo "benchtime: $LATENCYTIME" >>"$raw"
(cd harness && run -test.bench '^BenchmarkBucketLatency$' -test.cpu "$CPU" -test.count "$CHECK_COUNT" -test.benchtime "$LATENCYTIME")

# The remote tier: every registered backend, on servers the benchmarks
# start themselves (make bench installs them first). One configuration line
# per backend says which server version ran, or why none did; a backend
# whose server is missing and whose skip variable is set is skipped.
if [ "$REMOTE" = 1 ]; then
	"$GO" run ./cmd/catalog -servers >>"$raw"
	log "remote tier: -bench 'Remote' -cpu $REMOTE_CPU -count $REMOTE_COUNT -benchtime $REMOTETIME"
	echo "benchtime: $REMOTETIME" >>"$raw"
	(cd harness && run -test.bench '^BenchmarkRemote(Lock|Bucket)$' -test.cpu "$REMOTE_CPU" -test.count "$REMOTE_COUNT" -test.benchtime "$REMOTETIME")
	log "remote tier: fault scenarios (harness.TestRemoteFaults) -> faults.jsonl"
	CONTEND_FAULTS_OUT="$tmp/faults.jsonl" "$GO" test -count=1 -timeout 30m -run '^TestRemoteFaults$' ./harness >&2
else
	log "remote tier skipped: REMOTE=$REMOTE"
	echo "remote-tier: skipped (REMOTE=0)" >>"$raw"
fi

# Memory (harness/bench_memory_test.go: bytes per instance, per key, and
# per exited goroutine) is measured once per sample, like correctness.
log "correctness, lock latency and memory: -bench 'Correctness|LockLatency|Memory|KeyedMemory|GoroutineChurn' -cpu $CPU -count $CHECK_COUNT -benchtime 1x"
echo "benchtime: 1x" >>"$raw"
(cd harness && run -test.bench '^Benchmark(Correctness|LockLatency|Memory|KeyedMemory|GoroutineChurn)$' -test.cpu "$CPU" -test.count "$CHECK_COUNT" -test.benchtime 1x)

log "linearizability: recorded histories checked by porcupine (harness/linearize_test.go, remote_linearize_test.go) -> histories.jsonl"
CONTEND_HISTORIES_OUT="$tmp/histories.jsonl" CONTEND_VIOLATION_OUT="$tmp/naive-lock-violation.html" \
	"$GO" test -count=1 -timeout 30m -run '^(TestLinearizab.*|TestRemoteLinearizable|TestPershardLoadNotLinearizable)$' ./harness >&2

log "exactness against the textbook bucket (harness/exact_test.go) -> textbook.jsonl, stale.jsonl"
mkdir -p "$tmp/exact"
CONTEND_EXACT_OUT="$tmp/exact" "$GO" test -count=1 -run '^(TestDifferentialAgainstTextbook|TestStaleReadingsNeverOverGrant)$' ./harness >&2

log "race detector demonstration (make race)"
racelog="$tmp/race.log"
if CONTEND_RACE_DEMO=1 "$GO" test -race -count=1 -run '^TestRaceDemo$' ./harness >"$racelog" 2>&1; then
	log "the race demonstration reported no race; see $racelog"
	exit 1
fi
# Keep the first report, with the checkout's path made relative.
root="$(pwd)/"
awk '/^WARNING: DATA RACE/{on=1} on{print} on&&/^==================/{exit}' "$racelog" |
	sed "s#$root##g" >"$tmp/race-detector.log"
if ! grep -q 'WARNING: DATA RACE' "$tmp/race-detector.log"; then
	log "no DATA RACE report in the race demonstration output:"
	cat "$racelog" >&2
	exit 1
fi

mkdir -p "$OUT/raw"
rm -f "$OUT"/raw/*.txt
cp "$raw" "$OUT/raw/bench.txt"
cp "$tmp/race-detector.log" "$OUT/raw/race-detector.log"
rm -f "$OUT/raw/faults.jsonl"
if [ -f "$tmp/faults.jsonl" ]; then
	cp "$tmp/faults.jsonl" "$OUT/raw/faults.jsonl"
fi
cp "$tmp/exact/textbook.jsonl" "$tmp/exact/stale.jsonl" "$OUT/raw/"
"$GO" run ./cmd/catalog >"$OUT/raw/catalog.json"
cp "$tmp/histories.jsonl" "$OUT/raw/histories.jsonl"
mkdir -p "$OUT/histories"
cp "$tmp/naive-lock-violation.html" "$OUT/histories/naive-lock-violation.html"
took=$(($(date +%s) - start))
printf '{"mode": "%s", "seconds": %d}\n' "$mode" "$took" >"$OUT/raw/run.json"
log "benchmarks took $took s; raw results in $OUT/raw/"

log "writing the report"
"$GO" run ./cmd/report -raw "$OUT/raw" -out "$OUT"
log "done: $OUT/REPORT.md"
