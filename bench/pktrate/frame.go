package pktrate

import "webswitch/tcpfsm/header"

// FrameLen is the length of a frame of a Segment without options (a pure
// ACK): Ethernet, IPv4 and TCP headers, no payload (no Ethernet padding;
// the driver adds it).
const FrameLen = header.EthernetLen + header.IPv4MinLen + header.TCPMinLen

// Segment describes a TCP segment without payload in an Ethernet frame, as
// a client's kernel would send it: a pure ACK of an established flow, or a
// SYN with its options.
type Segment struct {
	SrcMAC, DstMAC   [6]byte // client, switch
	Src, Dst         [4]byte // client, VIP
	SrcPort, DstPort uint16
	Seq, Ack         uint32 // for an ACK, the client's snd_nxt and rcv_nxt
	Flags            uint8  // header.FlagACK, header.FlagSYN ...
	Window           uint16 // raw window field
	// Options are the TCP option bytes, a multiple of 4 and at most 40
	// long (pad them with NOPs).
	Options []byte
}

// Len returns the length of the segment's frame: FrameLen and the options.
func (s *Segment) Len() int { return FrameLen + len(s.Options) }

// Encode writes the frame into b[:s.Len()], with valid IPv4 header and TCP
// checksums. It does not allocate.
func (s *Segment) Encode(b []byte) {
	b = b[:s.Len()]
	header.Ethernet(b).Encode(s.DstMAC[:], s.SrcMAC[:], header.EtherTypeIPv4)
	ip := header.IPv4(b[header.EthernetLen:])
	ip.Encode(s.Src, s.Dst, header.ProtocolTCP, len(ip), 0)
	tcp := header.TCP(ip[header.IPv4MinLen:])
	tcp.Encode(&header.Fields{
		SrcPort: s.SrcPort, DstPort: s.DstPort,
		Seq: s.Seq, Ack: s.Ack,
		Flags: s.Flags, Window: s.Window,
	}, len(s.Options))
	copy(tcp[header.TCPMinLen:], s.Options)
	tcp.SetChecksum(s.Src, s.Dst)
}
