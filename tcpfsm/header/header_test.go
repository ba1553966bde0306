package header

import (
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// frame builds an IPv4/TCP packet with gopacket, the reference decoder.
func frame(t testing.TB, payload []byte, opts []layers.TCPOption) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: []byte{198, 18, 0, 10}, DstIP: []byte{198, 18, 0, 100}}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Ack: 2000, SYN: true, ACK: true, Window: 512, Options: opts}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ip, tcp, gopacket.Payload(payload))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseAgainstGopacket(t *testing.T) {
	b := frame(t, []byte("hello"), []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		{OptionType: layers.TCPOptionKindNop},
	})
	ip, err := ParseIPv4(append(b, 0, 0, 0)) // Ethernet padding is trimmed
	if err != nil {
		t.Fatal(err)
	}
	if len(ip) != len(b) || !ip.ChecksumValid() || ip.Src() != [4]byte{198, 18, 0, 10} {
		t.Fatalf("ip %x", ip)
	}
	tcp, err := ParseTCP(ip.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if !tcp.ChecksumValid(ip.Src(), ip.Dst()) || tcp.SrcPort() != 40000 || tcp.Seq() != 1000 || tcp.Ack() != 2000 ||
		tcp.Flags() != FlagSYN|FlagACK || tcp.Window() != 512 || string(tcp.Payload()) != "hello" {
		t.Fatalf("tcp fields wrong: %x", tcp)
	}
	var o SynOptions
	if err := ParseSynOptions(tcp.Options(), &o); err != nil {
		t.Fatal(err)
	}
	if o != (SynOptions{MSS: 1460, WScale: 7, WScaleOK: true, SACKOK: true}) {
		t.Errorf("options %+v", o)
	}
	tcp[len(tcp)-1] ^= 1
	if tcp.ChecksumValid(ip.Src(), ip.Dst()) {
		t.Error("altered payload passes the checksum")
	}
}

func TestParseErrors(t *testing.T) {
	good := frame(t, nil, nil)
	tests := []struct {
		name  string
		edit  func(b []byte) []byte
		ipErr error
	}{
		{"truncated", func(b []byte) []byte { return b[:10] }, ErrTruncated},
		{"version 6", func(b []byte) []byte { b[0] = 0x65; return b }, ErrVersion},
		{"ihl too small", func(b []byte) []byte { b[0] = 0x44; return b }, ErrIHL},
		{"ihl past end", func(b []byte) []byte { b[0] = 0x4f; return b[:40] }, ErrIHL},
		{"total length too long", func(b []byte) []byte { b[2], b[3] = 0xff, 0xff; return b }, ErrTotalLength},
		{"more fragments", func(b []byte) []byte { b[6] |= 0x20; return b }, ErrFragment},
		{"fragment offset", func(b []byte) []byte { b[7] = 1; return b }, ErrFragment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(append([]byte(nil), good...))
			if _, err := ParseIPv4(b); err != tt.ipErr {
				t.Errorf("err = %v, want %v", err, tt.ipErr)
			}
		})
	}
	if _, err := ParseTCP(make([]byte, 19)); err != ErrTruncated {
		t.Errorf("short TCP: %v", err)
	}
	bad := make([]byte, 20)
	bad[12] = 0x40 // data offset 16 bytes
	if _, err := ParseTCP(bad); err != ErrDataOffset {
		t.Errorf("data offset 4: %v", err)
	}
	for _, opts := range [][]byte{{2, 4, 5}, {3, 2}, {2, 3, 0}, {8, 9, 0, 0, 0, 0, 0, 0, 0}, {5, 7, 0, 0, 0, 0, 0}, {9}} {
		var o SynOptions
		if err := ParseSynOptions(opts, &o); err != ErrOptions {
			t.Errorf("options %x: %v, want ErrOptions", opts, err)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	b := make([]byte, IPv4MinLen+TCPMinLen+SynAckOptionsLen+3)
	ip := IPv4(b)
	src, dst := [4]byte{198, 18, 0, 100}, [4]byte{198, 18, 0, 10}
	ip.Encode(src, dst, ProtocolTCP, len(b), 7)
	tcp := TCP(b[IPv4MinLen:])
	tcp.Encode(&Fields{SrcPort: 80, DstPort: 40000, Seq: 5, Ack: 6, Flags: FlagSYN | FlagACK, Window: 100}, SynAckOptionsLen)
	EncodeSynAckOptions(tcp[TCPMinLen:], 1460, &SynOptions{WScaleOK: true, SACKOK: true}, 7)
	copy(tcp[TCPMinLen+SynAckOptionsLen:], "abc")
	tcp.SetChecksum(src, dst)
	p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
	if p.ErrorLayer() != nil {
		t.Fatal(p.ErrorLayer().Error())
	}
	gt := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if gt.Seq != 5 || gt.Ack != 6 || !gt.SYN || !gt.ACK || string(gt.Payload) != "abc" {
		t.Errorf("gopacket reads %+v", gt)
	}
	if !ip.ChecksumValid() || !TCP(b[IPv4MinLen:]).ChecksumValid(src, dst) {
		t.Error("encoded checksums invalid")
	}
	var o SynOptions
	if err := ParseSynOptions(TCP(b[IPv4MinLen:]).Options(), &o); err != nil || o != (SynOptions{MSS: 1460, WScale: 7, WScaleOK: true, SACKOK: true}) {
		t.Errorf("options back: %+v %v", o, err)
	}
}

func TestNoAllocs(t *testing.T) {
	b := frame(t, []byte("GET / HTTP/1.1\r\n\r\n"), nil)
	var o SynOptions
	allocs := testing.AllocsPerRun(100, func() {
		ip, _ := ParseIPv4(b)
		tcp, _ := ParseTCP(ip.Payload())
		_ = tcp.ChecksumValid(ip.Src(), ip.Dst())
		_ = ParseSynOptions(tcp.Options(), &o)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame", allocs)
	}
}

// FuzzParse feeds arbitrary bytes to the IPv4, TCP and option parsers: they
// never panic, and what they accept stays inside the input.
func FuzzParse(f *testing.F) {
	f.Add(frame(f, []byte("x"), nil))
	f.Add(frame(f, nil, []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{1, 2}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, err := ParseIPv4(b)
		if err != nil {
			return
		}
		if len(ip) > len(b) || ip.HeaderLen() > len(ip) {
			t.Fatalf("view beyond input")
		}
		_ = ip.ChecksumValid()
		tcp, err := ParseTCP(ip.Payload())
		if err != nil {
			return
		}
		_ = tcp.ChecksumValid(ip.Src(), ip.Dst())
		var o SynOptions
		if ParseSynOptions(tcp.Options(), &o) == nil && o.WScaleOK && o.WScale > MaxWScale {
			t.Fatalf("window scale %d", o.WScale)
		}
	})
}
