package pktrate

import "webswitch/tcpfsm/header"

// FrameLen is the length of an ACK frame: Ethernet, IPv4 and TCP headers
// without options or payload (no Ethernet padding; the driver adds it).
const FrameLen = header.EthernetLen + header.IPv4MinLen + header.TCPMinLen

// ACK describes a pure TCP ACK of an established flow, as the client's
// kernel would send it.
type ACK struct {
	SrcMAC, DstMAC   [6]byte // client, switch
	Src, Dst         [4]byte // client, VIP
	SrcPort, DstPort uint16
	Seq, Ack         uint32 // the client's snd_nxt and rcv_nxt
	Window           uint16 // raw window field
}

// Encode writes the frame into b[:FrameLen], with valid IPv4 header and TCP
// checksums. It does not allocate.
func (a *ACK) Encode(b []byte) {
	b = b[:FrameLen]
	header.Ethernet(b).Encode(a.DstMAC[:], a.SrcMAC[:], header.EtherTypeIPv4)
	ip := header.IPv4(b[header.EthernetLen:])
	ip.Encode(a.Src, a.Dst, header.ProtocolTCP, header.IPv4MinLen+header.TCPMinLen, 0)
	tcp := header.TCP(ip[header.IPv4MinLen:])
	tcp.Encode(&header.Fields{
		SrcPort: a.SrcPort, DstPort: a.DstPort,
		Seq: a.Seq, Ack: a.Ack,
		Flags: header.FlagACK, Window: a.Window,
	}, 0)
	tcp.SetChecksum(a.Src, a.Dst)
}
