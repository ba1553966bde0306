package neigh

import (
	"bytes"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// arpMsg is an ARP frame to build with gopacket, independently of the
// package's own encoder.
type arpMsg struct {
	dst, sha, tha [6]byte
	op            uint16
	spa, tpa      [4]byte
}

// bytes returns m as an Ethernet frame from m.sha.
func (m arpMsg) bytes(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: m.sha[:], DstMAC: m.dst[:], EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: m.op, SourceHwAddress: m.sha[:], SourceProtAddress: m.spa[:], DstHwAddress: m.tha[:], DstProtAddress: m.tpa[:]}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var (
	clientMAC = [6]byte{2, 0, 0, 0, 0, 10}
	clientIP  = [4]byte{198, 18, 0, 10}
	vip4      = [4]byte{198, 18, 0, 100}
)

// mutate returns a copy of b with b[i] = v.
func mutate(b []byte, i int, v byte) []byte {
	b = bytes.Clone(b)
	b[i] = v
	return b
}

func TestParseARP(t *testing.T) {
	req := arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: clientMAC, spa: clientIP, tpa: vip4}.bytes(t)
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"request", req, true},
		{"reply", arpMsg{dst: clientMAC, op: arpOpReply, sha: clientMAC, spa: clientIP, tha: clientMAC, tpa: vip4}.bytes(t), true},
		{"padded to 60 bytes", append(bytes.Clone(req), make([]byte, 18)...), true},
		{"empty", nil, false},
		{"truncated by one byte", req[:arpFrameLen-1], false},
		{"Ethernet header only", req[:14], false},
		{"not ARP: IPv4 EtherType", mutate(req, 13, 0x00), false},
		{"VLAN tagged", mutate(mutate(req, 12, 0x81), 13, 0x00), false},
		{"hardware type IEEE 802", mutate(req, 15, 6), false},
		{"protocol IPv6", mutate(mutate(req, 16, 0x86), 17, 0xdd), false},
		{"hardware address size 8", mutate(req, 18, 8), false},
		{"protocol address size 16", mutate(req, 19, 16), false},
		{"RARP request", mutate(req, 21, 3), false},
		{"operation 0", mutate(req, 21, 0), false},
		{"operation 257", mutate(req, 20, 1), false},
	} {
		f, ok := parseARP(c.b)
		if ok != c.ok {
			t.Errorf("%s: parseARP ok = %v, want %v", c.name, ok, c.ok)
			continue
		}
		if ok && len(f) != arpFrameLen {
			t.Errorf("%s: view of %d bytes, want %d", c.name, len(f), arpFrameLen)
		}
	}
	f, _ := parseARP(req)
	if f.op() != arpOpRequest || f.sha() != clientMAC || f.spa() != clientIP || f.tpa() != vip4 {
		t.Errorf("request read as op %d sha %v spa %v tpa %v", f.op(), f.sha(), f.spa(), f.tpa())
	}
}

func TestParseARPNoAllocs(t *testing.T) {
	req := arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: clientMAC, spa: clientIP, tpa: vip4}.bytes(t)
	if n := testing.AllocsPerRun(100, func() {
		f, ok := parseARP(req)
		if !ok || f.spa() != clientIP {
			t.Fatal("request not parsed")
		}
	}); n != 0 {
		t.Errorf("parseARP: %v allocations, want 0", n)
	}
}

// FuzzParseARP: parseARP never panics, accepts only whole frames, and what
// it accepts, encoded again from the fields, is the same ARP packet (so no
// field the resolver relies on is read from the wrong place).
func FuzzParseARP(f *testing.F) {
	f.Add(arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: clientMAC, spa: clientIP, tpa: vip4}.bytes(f))
	f.Add(arpMsg{dst: clientMAC, op: arpOpReply, sha: clientMAC, spa: vip4, tha: clientMAC, tpa: clientIP}.bytes(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := parseARP(b)
		if !ok {
			return
		}
		if len(b) < arpFrameLen || len(p) != arpFrameLen {
			t.Fatalf("accepted a %d-byte frame as %d bytes", len(b), len(p))
		}
		q := arpFrame(make([]byte, arpFrameLen))
		q.encode([6]byte(p[0:6]), p.op(), p.sha(), p.spa(), [6]byte(p[32:38]), p.tpa())
		if !bytes.Equal(q[:6], p[:6]) || !bytes.Equal(q[12:], p[12:]) {
			t.Fatalf("re-encoded %x, parsed %x", q, p)
		}
	})
}
