package pktrate

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var testACK = ACK{
	SrcMAC:  [6]byte{0x02, 0, 0, 0, 0, 0x10},
	DstMAC:  [6]byte{0x02, 0, 0, 0, 0, 0x02},
	Src:     [4]byte{198, 18, 0, 10},
	Dst:     [4]byte{198, 18, 0, 100},
	SrcPort: 40001, DstPort: 80,
	Seq: 0xfffffff0, Ack: 0x12345678,
	Window: 502,
}

func TestACKDecodes(t *testing.T) {
	b := make([]byte, FrameLen+8)
	for i := range b {
		b[i] = 0xAA // Encode must overwrite every byte it owns
	}
	testACK.Encode(b)
	if !bytes.Equal(b[FrameLen:], bytes.Repeat([]byte{0xAA}, 8)) {
		t.Fatalf("Encode wrote past FrameLen: % x", b[FrameLen:])
	}
	frame := b[:FrameLen]
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if err := pkt.ErrorLayer(); err != nil {
		t.Fatalf("decode: %v", err.Error())
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	checks := []struct {
		name      string
		got, want any
	}{
		{"eth src", eth.SrcMAC.String(), net.HardwareAddr(testACK.SrcMAC[:]).String()},
		{"eth dst", eth.DstMAC.String(), net.HardwareAddr(testACK.DstMAC[:]).String()},
		{"ethertype", eth.EthernetType, layers.EthernetTypeIPv4},
		{"ip version", ip.Version, uint8(4)},
		{"ip header length", ip.IHL, uint8(5)},
		{"ip total length", ip.Length, uint16(40)},
		{"ip flags", ip.Flags, layers.IPv4DontFragment},
		{"ip fragment offset", ip.FragOffset, uint16(0)},
		{"ip ttl", ip.TTL, uint8(64)},
		{"ip protocol", ip.Protocol, layers.IPProtocolTCP},
		{"ip src", ip.SrcIP.String(), "198.18.0.10"},
		{"ip dst", ip.DstIP.String(), "198.18.0.100"},
		{"tcp src port", tcp.SrcPort, layers.TCPPort(40001)},
		{"tcp dst port", tcp.DstPort, layers.TCPPort(80)},
		{"tcp seq", tcp.Seq, testACK.Seq},
		{"tcp ack", tcp.Ack, testACK.Ack},
		{"tcp data offset", tcp.DataOffset, uint8(5)},
		{"tcp window", tcp.Window, testACK.Window},
		{"tcp flags", [9]bool{tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH, tcp.ACK, tcp.URG, tcp.ECE, tcp.CWR, tcp.NS},
			[9]bool{4: true}},
		{"tcp urgent", tcp.Urgent, uint16(0)},
		{"tcp options", len(tcp.Options), 0},
		{"tcp payload", len(tcp.Payload), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// gopacket computes both checksums afresh from the decoded fields: the
	// bytes it serializes (padded to the Ethernet minimum of 60) are ours
	// only if our checksums are right.
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	want := buf.Bytes()
	if len(want) < FrameLen || !bytes.Equal(want[:FrameLen], frame) || !bytes.Equal(want[FrameLen:], make([]byte, len(want)-FrameLen)) {
		t.Errorf("checksums differ from gopacket's:\n got  % x\n want % x", frame, want)
	}
}

func TestACKEncodeNoAllocs(t *testing.T) {
	b := make([]byte, FrameLen)
	a := testACK
	if n := testing.AllocsPerRun(100, func() { a.Encode(b) }); n != 0 {
		t.Errorf("Encode allocates %v times", n)
	}
}
