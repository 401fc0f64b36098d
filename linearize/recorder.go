package linearize

import (
	"cmp"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// Recorder logs the operations of a fixed set of clients, numbered from 0.
// Each client's operations are appended to that client's own log, so
// clients on different goroutines record without sharing a lock, and the
// recorder adds no synchronisation between them that could hide a race in
// the object under test. A client must be used by one goroutine at a time.
//
// Times come from one monotonic source: the monotonic reading of
// time.Now, as an offset from the recorder's creation. Recording costs two
// clock readings and an append per operation: stress runs record, and
// benchmarks must not.
type Recorder struct {
	base    time.Time
	clients []clientLog
}

// clientLog is one client's operations, padded so that two clients'
// appends do not share a cache line.
type clientLog struct {
	ops []porcupine.Operation
	_   [104]byte
}

// NewRecorder returns a Recorder for clients clients.
func NewRecorder(clients int) *Recorder {
	return &Recorder{base: time.Now(), clients: make([]clientLog, clients)}
}

// Since returns t as the recorder's timestamp: nanoseconds since the
// recorder was made, on the monotonic clock.
func (r *Recorder) Since(t time.Time) int64 { return int64(t.Sub(r.base)) }

// Call starts an operation of client with input, reading the clock now.
// Finish it with Op.Return or Op.Unknown.
func (r *Recorder) Call(client int, input any) Op {
	return Op{r: r, client: client, input: input, call: r.Since(time.Now())}
}

// CallAt starts an operation of client with input, called at t: for an
// event whose start the caller knows rather than observes (the instant a
// lease's TTL ran out, for an Expire).
func (r *Recorder) CallAt(client int, input any, t time.Time) Op {
	return Op{r: r, client: client, input: input, call: r.Since(t)}
}

// Op is an operation in progress, returned by Recorder.Call.
type Op struct {
	r      *Recorder
	client int
	input  any
	call   int64
}

// Return records the operation as returned now, with output.
func (o Op) Return(output any) {
	c := &o.r.clients[o.client]
	c.ops = append(c.ops, porcupine.Operation{ClientId: o.client, Input: o.input, Call: o.call, Output: output, Return: o.r.Since(time.Now())})
}

// Unknown records the operation as one whose outcome the client never
// learned, with output (the model's unknown output, e.g. a LockOutput
// with Outcome Unknown). History gives it a return time after every other
// operation's, so that the checker may place it anywhere after its call.
func (o Op) Unknown(output any) {
	c := &o.r.clients[o.client]
	c.ops = append(c.ops, porcupine.Operation{ClientId: o.client, Input: o.input, Call: o.call, Output: output, Return: unknownReturn})
}

// unknownReturn marks an unknown outcome until History replaces it.
const unknownReturn = -1

// History returns every client's operations, ordered by call time. An
// unknown outcome returns one nanosecond after the latest time in the
// history. Call it once every client has finished.
func (r *Recorder) History() []porcupine.Operation {
	var ops []porcupine.Operation
	for i := range r.clients {
		ops = append(ops, r.clients[i].ops...)
	}
	var end int64
	for _, op := range ops {
		end = max(end, op.Call, op.Return)
	}
	for i := range ops {
		if ops[i].Return == unknownReturn {
			ops[i].Return = end + 1
		}
	}
	slices.SortStableFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	return ops
}
