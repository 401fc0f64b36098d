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
func BenchmarkSlotChoice(b *testing.B) {
	if !useRDPID {
		b.Skip("no RDPID on this machine")
	}
	choices := []struct {
		name string
		add  func(s []stripe, mask uint64, own *stripe)
	}{
		{"fixed", func(_ []stripe, _ uint64, own *stripe) { own.n.Add(1) }},
		{"rdpid", func(s []stripe, mask uint64, _ *stripe) { s[rdpid()&mask].n.Add(1) }},
		{"procpin", func(s []stripe, mask uint64, _ *stripe) { s[pid()&mask].n.Add(1) }},
		{"stack-table", stackTableAdd},
	}
	for _, c := range choices {
		b.Run("choice="+c.name, func(b *testing.B) {
			slots := currentSlots()
			stripes := make([]stripe, slots)
			mask := uint64(slots - 1)
			b.RunParallel(func(pb *testing.PB) {
				own := new(stripe)
				for pb.Next() {
					c.add(stripes, mask, own)
				}
			})
		})
	}
}

func stackTableAdd(s []stripe, mask uint64, _ *stripe) {
	e := hintEntry()
	if sum := s[uint64(e.Load())&mask].n.Add(1); refreshDue(uint64(sum)) {
		refreshHint(e)
	}
}
