#include "textflag.h"

// func rdpid() uint64
//
// RDPID RAX (F3 0F C7 F8): reads IA32_TSC_AUX, where Linux keeps the
// number of the CPU the thread runs on (low 12 bits) and its NUMA node.
TEXT ·rdpid(SB), NOSPLIT, $0-8
	BYTE $0xF3; BYTE $0x0F; BYTE $0xC7; BYTE $0xF8
	MOVQ AX, ret+0(FP)
	RET

// func cpuid7ecx() uint32
TEXT ·cpuid7ecx(SB), NOSPLIT, $0-4
	MOVL $7, AX
	MOVL $0, CX
	CPUID
	MOVL CX, ret+0(FP)
	RET
