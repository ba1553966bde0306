package pktrate

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"webswitch/tcpfsm/header"
)

var testACK = Segment{
	SrcMAC:  [6]byte{0x02, 0, 0, 0, 0, 0x10},
	DstMAC:  [6]byte{0x02, 0, 0, 0, 0, 0x02},
	Src:     [4]byte{198, 18, 0, 10},
	Dst:     [4]byte{198, 18, 0, 100},
	SrcPort: 40001, DstPort: 80,
	Seq: 0xfffffff0, Ack: 0x12345678,
	Flags:  header.FlagACK,
	Window: 502,
}

// testSYN carries the options of a Linux SYN without timestamps: MSS 1460,
// NOP, NOP, SACK permitted, NOP, window scale 7.
var testSYN = Segment{
	SrcMAC:  [6]byte{0x02, 0, 0, 0, 0, 0x50},
	DstMAC:  [6]byte{0x02, 0, 0, 0, 0, 0x02},
	Src:     [4]byte{198, 19, 200, 7},
	Dst:     [4]byte{198, 18, 0, 100},
	SrcPort: 51234, DstPort: 80,
	Seq:     0x89abcdef,
	Flags:   header.FlagSYN,
	Window:  64240,
	Options: []byte{2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7},
}

// testData is a request segment with an IPv4 router alert option (RFC
// 2113) and an odd payload length (the checksums pad it).
var testData = Segment{
	SrcMAC:  [6]byte{0x02, 0, 0, 0, 0, 0x50},
	DstMAC:  [6]byte{0x02, 0, 0, 0, 0, 0x02},
	Src:     [4]byte{198, 18, 0, 250},
	Dst:     [4]byte{198, 18, 0, 100},
	SrcPort: 40002, DstPort: 80,
	Seq: 0x01020304, Ack: 0xa0b0c0d0,
	Flags:     header.FlagACK | header.FlagPSH,
	Window:    65535,
	IPOptions: []byte{0x94, 4, 0, 0},
	Payload:   []byte("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n!"),
}

func TestSegmentDecodes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seg   Segment
		flags [9]bool // FIN SYN RST PSH ACK URG ECE CWR NS
	}{
		{"ACK", testACK, [9]bool{4: true}},
		{"SYN", testSYN, [9]bool{1: true}},
		{"data with IP options", testData, [9]bool{3: true, 4: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSegment(t, &tc.seg, tc.flags)
		})
	}
}

// checkSegment encodes seg and decodes it with gopacket.
func checkSegment(t *testing.T, seg *Segment, flags [9]bool) {
	t.Helper()
	n := seg.Len()
	b := make([]byte, n+8)
	for i := range b {
		b[i] = 0xAA // Encode must overwrite every byte it owns
	}
	seg.Encode(b)
	if !bytes.Equal(b[n:], bytes.Repeat([]byte{0xAA}, 8)) {
		t.Fatalf("Encode wrote past Len: % x", b[n:])
	}
	frame := b[:n]
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if err := pkt.ErrorLayer(); err != nil {
		t.Fatalf("decode: %v", err.Error())
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	var ipOpts []byte
	for _, o := range ip.Options {
		ipOpts = append(ipOpts, o.OptionType, o.OptionLength)
		ipOpts = append(ipOpts, o.OptionData...)
	}
	var opts []byte
	for _, o := range tcp.Options {
		opts = append(opts, byte(o.OptionType))
		if o.OptionType > layers.TCPOptionKindNop {
			opts = append(opts, o.OptionLength)
			opts = append(opts, o.OptionData...)
		}
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"eth src", eth.SrcMAC.String(), net.HardwareAddr(seg.SrcMAC[:]).String()},
		{"eth dst", eth.DstMAC.String(), net.HardwareAddr(seg.DstMAC[:]).String()},
		{"ethertype", eth.EthernetType, layers.EthernetTypeIPv4},
		{"ip version", ip.Version, uint8(4)},
		{"ip header length", int(ip.IHL), 5 + len(seg.IPOptions)/4},
		{"ip options", string(ipOpts), string(seg.IPOptions)},
		{"ip total length", int(ip.Length), n - header.EthernetLen},
		{"ip flags", ip.Flags, layers.IPv4DontFragment},
		{"ip fragment offset", ip.FragOffset, uint16(0)},
		{"ip ttl", ip.TTL, uint8(64)},
		{"ip protocol", ip.Protocol, layers.IPProtocolTCP},
		{"ip src", ip.SrcIP.String(), net.IP(seg.Src[:]).String()},
		{"ip dst", ip.DstIP.String(), net.IP(seg.Dst[:]).String()},
		{"tcp src port", tcp.SrcPort, layers.TCPPort(seg.SrcPort)},
		{"tcp dst port", tcp.DstPort, layers.TCPPort(seg.DstPort)},
		{"tcp seq", tcp.Seq, seg.Seq},
		{"tcp ack", tcp.Ack, seg.Ack},
		{"tcp data offset", int(tcp.DataOffset), 5 + len(seg.Options)/4},
		{"tcp window", tcp.Window, seg.Window},
		{"tcp flags", [9]bool{tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH, tcp.ACK, tcp.URG, tcp.ECE, tcp.CWR, tcp.NS}, flags},
		{"tcp urgent", tcp.Urgent, uint16(0)},
		{"tcp options", string(opts), string(seg.Options)},
		{"tcp payload", string(tcp.Payload), string(seg.Payload)},
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
	opt := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	if err := gopacket.SerializeLayers(buf, opt, eth, ip, tcp, gopacket.Payload(tcp.Payload)); err != nil {
		t.Fatal(err)
	}
	want := buf.Bytes()
	if len(want) < n || !bytes.Equal(want[:n], frame) || !bytes.Equal(want[n:], make([]byte, len(want)-n)) {
		t.Errorf("checksums differ from gopacket's:\n got  % x\n want % x", frame, want)
	}
}

func TestSegmentEncodeNoAllocs(t *testing.T) {
	b := make([]byte, testData.Len())
	for _, seg := range []Segment{testACK, testSYN, testData} {
		if n := testing.AllocsPerRun(100, func() { seg.Encode(b) }); n != 0 {
			t.Errorf("Encode of a %d-byte frame allocates %v times", seg.Len(), n)
		}
	}
}
