package pershard

import "testing"

// BenchmarkSlotChoice measures ways for a goroutine to find its stripe, each
// followed by the same atomic add, so that the difference between them is the
// cost of the choice on the add's path. It is the evidence for shardHint's
// design (see the package documentation); run it with
//
//	go test -run '^$' -bench SlotChoice -cpu 1,2 -count 10 ./impls/pershard/
//
// The choices:
//
//   - fixed: no choice at all, every goroutine adds to its own stripe known in
//     advance (the floor the harness calls padded-slots).
//   - rdpid: the CPU number from RDPID, as shardHint does where it can.
//   - procpin: the P id from runtime.procPin/procUnpin, shardHint's fallback.
//   - stack-table: what Counter.Add does. No call on the add's path: the
//     hint is cached in hintTable, indexed by the goroutine's stack address,
//     and refreshed with shardHint on about one add in 64 (refreshDue).
//
// Measured here at GOMAXPROCS 2 (one goroutine per P): fixed 1.35 ns/op,
// stack-table 1.86, rdpid 2.35, procpin 3.3-3.8.
func BenchmarkSlotChoice(b *testing.B) {
	if !useRDPID {
		b.Skip("no RDPID on this machine")
	}
	for _, choice := range []string{"fixed", "rdpid", "procpin", "stack-table"} {
		b.Run("choice="+choice, func(b *testing.B) {
			slots := currentSlots()
			s := make([]stripe, slots)
			mask := uint64(slots - 1)
			b.RunParallel(func(pb *testing.PB) {
				// One loop per choice, so that the loop holds the choice and
				// the add and nothing else (no indirect call).
				switch choice {
				case "fixed":
					own := new(stripe)
					for pb.Next() {
						own.n.Add(1)
					}
				case "rdpid":
					for pb.Next() {
						s[rdpid()&mask].n.Add(1)
					}
				case "procpin":
					for pb.Next() {
						s[pid()&mask].n.Add(1)
					}
				case "stack-table": // what Counter.Add does
					for pb.Next() {
						e := hintEntry()
						if sum := s[uint64(e.Load())&mask].n.Add(1); refreshDue(uint64(sum)) {
							refreshHint(e)
						}
					}
				}
			})
		})
	}
}
