//go:build !amd64

package pershard

// useRDPID is false: RDPID is an x86 instruction.
const useRDPID = false

// shardHint returns the P id from pid; see cpu_amd64.go.
func shardHint() uint64 { return pid() }

// rdpid is never called where useRDPID is false; it keeps Add portable.
func rdpid() uint64 { return 0 }
