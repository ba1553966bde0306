package shard

import (
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"webswitch/tcpfsm/header"
)

func arpFrame(t testing.TB, op uint16) []byte {
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: broadcastMAC[:], EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: []byte{2, 0, 0, 0, 0, 1}, SourceProtAddress: []byte{198, 18, 0, 21},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 18, 0, 100}}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseARP(t *testing.T) {
	var p arpPacket
	if !parseARP(arpFrame(t, arpOpRequest), &p) {
		t.Fatal("valid request rejected")
	}
	want := arpPacket{op: arpOpRequest, sha: [6]byte{2, 0, 0, 0, 0, 1}, spa: [4]byte{198, 18, 0, 21}, tpa: [4]byte{198, 18, 0, 100}}
	if p != want {
		t.Errorf("parsed %+v, want %+v", p, want)
	}
	bad := arpFrame(t, arpOpReply)
	bad[header.EthernetLen+5] = 16 // protocol address size
	if parseARP(bad, &p) || parseARP(bad[:30], &p) {
		t.Error("malformed ARP accepted")
	}
}

// FuzzParseARP: arbitrary frames never panic the ARP parser.
func FuzzParseARP(f *testing.F) {
	f.Add(arpFrame(f, arpOpRequest))
	f.Add(arpFrame(f, arpOpReply))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p arpPacket
		if parseARP(b, &p) && len(b) < 42 {
			t.Fatalf("accepted a %d-byte frame", len(b))
		}
	})
}
