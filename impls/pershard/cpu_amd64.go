package pershard

import "runtime"

// rdpid and cpuid7ecx are in cpu_amd64.s.
func rdpid() uint64
func cpuid7ecx() uint32

// useRDPID is whether shardHint reads the CPU number with RDPID: the CPU
// advertises the instruction (CPUID.(EAX=7,ECX=0):ECX bit 22) and the
// kernel is Linux, which stores the CPU number in IA32_TSC_AUX for it.
var useRDPID = runtime.GOOS == "linux" && cpuid7ecx()&(1<<22) != 0

// shardHint returns a number that identifies where the calling goroutine
// runs, for choosing a slot: the CPU number from RDPID where it is
// available (one instruction and a call, cheaper than procPin+procUnpin:
// see BenchmarkSlotChoice), otherwise the P id from pid. Either may be
// stale by the time it is used; see the package documentation.
//
// The CPU number is in the low 12 bits of RDPID's result and the NUMA node
// above them; callers mask the hint with a slot mask below maxSlots (1024),
// which drops the node.
func shardHint() uint64 {
	if useRDPID {
		return rdpid()
	}
	return pid()
}
