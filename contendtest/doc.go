// Package contendtest checks implementations of the contend contracts,
// written in the lab or outside it, from their own tests, as
// testing/fstest checks an fs.FS:
//
//	func TestMyLock(t *testing.T) {
//		contendtest.Lock(t, func() contend.Lock { return mylock.New() })
//	}
//
// [Counter], [Bucket], [Lock] and [Semaphore] run, as subtests, every
// check of their family: the sequential conformance checks, which are
// deterministic; a stress check of 100 goroutines at GOMAXPROCS 1, 2 and
// 8; and linearizability checks of recorded histories (with porcupine,
// through package linearize; for buckets, against the textbook token
// bucket of package textbook). Options declare what an implementation
// promises short of the exact guarantee ([Approximate],
// [LoadNotLinearizable], [NoFencing], [WeakTryAcquire]) or beyond it
// ([FIFO]), and the checks it fails by design ([Deviates]). Every check
// is listed ([CounterChecks], [BucketChecks], [LockChecks],
// [SemaphoreChecks]), to be run on its own.
//
// The measurements the checks are built on are exported, for benchmarks
// and reports: [RunCounter], [RunBucket], [RunLock] and [RunSemaphore]
// drive goroutines for a while and count what went wrong; [RecordCounter],
// [RecordLock] and [RecordSemaphore] record histories for package
// linearize.
//
// The stress and linearizability checks set GOMAXPROCS, so they must not
// run beside parallel tests. CONTEND_STRESS=long in the environment makes
// them run 20 times longer; CONTEND_HISTORIES_DIR names a directory where
// the drawings of histories found not linearizable are kept.
//
// Package contendtest imports testing: import it from tests only.
package contendtest
