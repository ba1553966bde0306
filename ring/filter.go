package ring

import "encoding/binary"

// Classic BPF opcodes (linux/bpf_common.h) used by the filters below.
const (
	bpfLdWAbs = 0x20 // BPF_LD|BPF_W|BPF_ABS
	bpfLdHAbs = 0x28 // BPF_LD|BPF_H|BPF_ABS
	bpfLdBAbs = 0x30 // BPF_LD|BPF_B|BPF_ABS
	bpfJeqK   = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
	bpfRetK   = 0x06 // BPF_RET|BPF_K
)

// FilterTCPToAddr returns a classic BPF program for Config.Filter that accepts
// only untagged IPv4 TCP frames to ip, whole; every other frame is dropped in
// the kernel and never reaches the ring.
func FilterTCPToAddr(ip [4]byte) []SockFilter {
	return []SockFilter{
		{Code: bpfLdHAbs, K: 12},                 // A = EtherType
		{Code: bpfJeqK, Jt: 0, Jf: 5, K: 0x0800}, // IPv4?
		{Code: bpfLdBAbs, K: 14 + 9},             // A = IP protocol
		{Code: bpfJeqK, Jt: 0, Jf: 3, K: 6},      // TCP?
		{Code: bpfLdWAbs, K: 14 + 16},            // A = destination address
		{Code: bpfJeqK, Jt: 0, Jf: 1, K: binary.BigEndian.Uint32(ip[:])},
		{Code: bpfRetK, K: 0xffffffff}, // accept the whole frame
		{Code: bpfRetK, K: 0},          // drop
	}
}
