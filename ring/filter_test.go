package ring

import (
	"testing"

	"golang.org/x/net/bpf"
)

// ipv4Frame returns an Ethernet frame carrying an IPv4 header with protocol
// proto to dst and a few payload bytes.
func ipv4Frame(etherType uint16, proto byte, dst [4]byte) []byte {
	f := make([]byte, 14+20+20)
	f[12], f[13] = byte(etherType>>8), byte(etherType)
	ip := f[14:]
	ip[0] = 0x45
	ip[9] = proto
	copy(ip[12:16], []byte{198, 18, 0, 1})
	copy(ip[16:20], dst[:])
	return f
}

func TestFilterTCPToAddr(t *testing.T) {
	vip := [4]byte{198, 18, 0, 100}
	other := [4]byte{198, 18, 0, 2}
	tests := []struct {
		name   string
		frame  []byte
		accept bool
	}{
		{name: "TCP to the address", frame: ipv4Frame(0x0800, 6, vip), accept: true},
		{name: "TCP elsewhere", frame: ipv4Frame(0x0800, 6, other)},
		{name: "UDP to the address", frame: ipv4Frame(0x0800, 17, vip)},
		{name: "ICMP to the address", frame: ipv4Frame(0x0800, 1, vip)},
		{name: "ARP", frame: ipv4Frame(0x0806, 6, vip)},
		{name: "IPv6", frame: ipv4Frame(0x86dd, 6, vip)},
		{name: "truncated before the address", frame: ipv4Frame(0x0800, 6, vip)[:14+19]},
		{name: "empty", frame: nil},
	}
	prog := FilterTCPToAddr(vip)
	raw := make([]bpf.RawInstruction, len(prog))
	for i, ins := range prog {
		raw[i] = bpf.RawInstruction{Op: ins.Code, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	insts, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("program does not disassemble: %v", insts)
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := vm.Run(tt.frame)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := n >= len(tt.frame) && n > 0; got != tt.accept {
				t.Errorf("accepted %d of %d bytes, want accept=%v", n, len(tt.frame), tt.accept)
			}
		})
	}
}
