package pktrate

import "webswitch/tcpfsm/header"

// FrameLen is the length of a frame of a Segment without options or
// payload (a pure ACK): Ethernet, IPv4 and TCP headers (no Ethernet
// padding; the driver adds it).
const FrameLen = header.EthernetLen + header.IPv4MinLen + header.TCPMinLen

// Segment describes a TCP segment in an Ethernet frame, as a client's
// kernel would send it: a pure ACK of an established flow, a SYN with its
// options, or a data segment; optionally with IPv4 options.
type Segment struct {
	SrcMAC, DstMAC   [6]byte // client, switch
	Src, Dst         [4]byte // client, VIP
	SrcPort, DstPort uint16
	Seq, Ack         uint32 // for an ACK, the client's snd_nxt and rcv_nxt
	Flags            uint8  // header.FlagACK, header.FlagSYN ...
	Window           uint16 // raw window field
	// Options are the TCP option bytes, a multiple of 4 and at most 40
	// long (pad them with NOPs). They are copied as they are: malformed
	// options make a malformed segment.
	Options []byte
	// IPOptions are the IPv4 option bytes, a multiple of 4 and at most 40
	// long, copied as they are.
	IPOptions []byte
	Payload   []byte // the TCP payload
}

// Len returns the length of the segment's frame: FrameLen, the options and
// the payload.
func (s *Segment) Len() int {
	return FrameLen + len(s.IPOptions) + len(s.Options) + len(s.Payload)
}

// Encode writes the frame into b[:s.Len()], with valid IPv4 header and TCP
// checksums. It does not allocate.
func (s *Segment) Encode(b []byte) {
	b = b[:s.Len()]
	header.Ethernet(b).Encode(s.DstMAC[:], s.SrcMAC[:], header.EtherTypeIPv4)
	ip := header.IPv4(b[header.EthernetLen:])
	ip.Encode(s.Src, s.Dst, header.ProtocolTCP, len(ip), 0)
	if n := len(s.IPOptions); n > 0 {
		ihl := header.IPv4MinLen + n
		ip[0] = 0x40 | byte(ihl/4)
		copy(ip[header.IPv4MinLen:], s.IPOptions)
		ip.SetChecksum()
	}
	tcp := header.TCP(ip[ip.HeaderLen():])
	tcp.Encode(&header.Fields{
		SrcPort: s.SrcPort, DstPort: s.DstPort,
		Seq: s.Seq, Ack: s.Ack,
		Flags: s.Flags, Window: s.Window,
	}, len(s.Options))
	copy(tcp[header.TCPMinLen:], s.Options)
	copy(tcp[header.TCPMinLen+len(s.Options):], s.Payload)
	tcp.SetChecksum(s.Src, s.Dst)
}
