// Package linearize checks recorded histories of the lab's shared objects
// for linearizability, with github.com/anishathalye/porcupine: is there one
// order of the operations, each placed between its call and its return,
// that a sequential object would have produced? It holds one model per
// family (Counter, Lock, Semaphore, and the fenced Register a lock
// protects), the Recorder that goroutines log their operations with, and
// Check, which runs the checker and draws a rejected history.
//
// An operation whose outcome the client never learned (a network call
// that timed out) is checked the way Jepsen checks it: it may or may not
// have taken effect. Op.Unknown gives it a return time after every
// other operation of the history, so the checker may place it anywhere
// after its call, the end included, where its effect is seen by nobody;
// each model accepts an unknown outcome in every state.
//
// Checking is NP-hard in general and exponential in the number of
// operations that overlap in time; the models keep their states small and
// comparable, and callers keep histories short (several short histories
// rather than one long one).
//
// The package does not import testing, so that a report can use it too.
package linearize

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/anishathalye/porcupine"
)

// Outcome is how an operation of a lock, semaphore or register ended.
type Outcome uint8

const (
	// Done: the operation took effect (a lease granted, a release
	// accepted, a write accepted, a read returned).
	Done Outcome = iota
	// Held: TryAcquire found the lock, or not enough permits, free
	// (contend.ErrHeld). It took no effect.
	Held
	// NotHeld: Release found the lease no longer held (contend.ErrNotHeld).
	// It took no effect.
	NotHeld
	// Rejected: the register refused a write whose fencing token was older
	// than one it had seen. It took no effect.
	Rejected
	// Unknown: the client never learned the outcome; the operation may or
	// may not have taken effect. Record it with Op.Unknown.
	Unknown
)

// String returns the outcome as the visualisation prints it.
func (o Outcome) String() string {
	switch o {
	case Done:
		return "ok"
	case Held:
		return "held"
	case NotHeld:
		return "not held"
	case Rejected:
		return "rejected"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Verdict is the outcome of checking one history.
type Verdict struct {
	Result porcupine.CheckResult // Ok, Illegal, or Unknown if the check timed out
	Ops    int                   // operations in the history
	// Visualization is the path of the HTML file drawn for an Illegal
	// history, or "" if none was drawn.
	Visualization string
}

// Check checks history against model, giving up with porcupine.Unknown
// after timeout (0: no limit). When the history is Illegal and dir is not
// empty, it draws porcupine's visualisation of the history and its longest
// partial linearizations into a new file name*.html in dir and returns its
// path in the verdict.
func Check(model porcupine.Model, history []porcupine.Operation, timeout time.Duration, dir, name string) (Verdict, error) {
	res, info := porcupine.CheckOperationsVerbose(model, history, timeout)
	v := Verdict{Result: res, Ops: len(history)}
	if res != porcupine.Illegal || dir == "" {
		return v, nil
	}
	f, err := os.CreateTemp(dir, filepath.Base(name)+"-*.html")
	if err != nil {
		return v, err
	}
	v.Visualization = f.Name()
	if err := f.Close(); err != nil {
		return v, err
	}
	return v, porcupine.VisualizePath(model, info, v.Visualization)
}

// Visualize checks history against model and draws porcupine's
// visualisation to path, whatever the verdict; it returns the verdict.
func Visualize(model porcupine.Model, history []porcupine.Operation, path string) (porcupine.CheckResult, error) {
	res, info := porcupine.CheckOperationsVerbose(model, history, 0)
	return res, porcupine.VisualizePath(model, info, path)
}
