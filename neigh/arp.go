package neigh

import (
	"encoding/binary"

	"webswitch/tcpfsm/header"
)

// Ethernet/IPv4 ARP (RFC 826) constants.
const (
	arpLen          = 28 // an Ethernet/IPv4 ARP packet
	arpFrameLen     = header.EthernetLen + arpLen
	arpHTypeEther   = 1
	arpOpRequest    = 1
	arpOpReply      = 2
	arpHLenEthernet = 6
	arpPLenIPv4     = 4
	// minFrameLen is the shortest Ethernet frame (without its FCS): the
	// resolver pads what it sends to it rather than trust the driver to.
	minFrameLen = 60
)

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpFrame is a view of an Ethernet frame carrying an Ethernet/IPv4 ARP
// request or reply. Check it with parseARP before calling its accessors.
type arpFrame []byte

// parseARP returns b as an ARP frame if it is an Ethernet frame carrying an
// Ethernet/IPv4 ARP request or reply (trailing padding allowed).
func parseARP(b []byte) (arpFrame, bool) {
	if len(b) < arpFrameLen || header.Ethernet(b).Type() != header.EtherTypeARP {
		return nil, false
	}
	a := b[header.EthernetLen:]
	if binary.BigEndian.Uint16(a[0:]) != arpHTypeEther || binary.BigEndian.Uint16(a[2:]) != header.EtherTypeIPv4 ||
		a[4] != arpHLenEthernet || a[5] != arpPLenIPv4 {
		return nil, false
	}
	f := arpFrame(b[:arpFrameLen])
	if op := f.op(); op != arpOpRequest && op != arpOpReply {
		return nil, false
	}
	return f, true
}

func (f arpFrame) op() uint16 { return binary.BigEndian.Uint16(f[header.EthernetLen+6:]) }

// sha, spa and tpa are the sender's hardware and protocol addresses and
// the target's protocol address (the target's hardware address means
// nothing in a request and is ours in a reply: the resolver ignores it).
func (f arpFrame) sha() [6]byte { return [6]byte(f[header.EthernetLen+8:]) }
func (f arpFrame) spa() [4]byte { return [4]byte(f[header.EthernetLen+14:]) }
func (f arpFrame) tpa() [4]byte { return [4]byte(f[header.EthernetLen+24:]) }

// encode writes a complete frame into f (at least arpFrameLen bytes, the
// rest left as it is: padding): an Ethernet
// header from sha to dst, and an ARP packet of op.
func (f arpFrame) encode(dst [6]byte, op uint16, sha [6]byte, spa [4]byte, tha [6]byte, tpa [4]byte) {
	header.Ethernet(f).Encode(dst[:], sha[:], header.EtherTypeARP)
	a := f[header.EthernetLen:]
	binary.BigEndian.PutUint16(a[0:], arpHTypeEther)
	binary.BigEndian.PutUint16(a[2:], header.EtherTypeIPv4)
	a[4], a[5] = arpHLenEthernet, arpPLenIPv4
	binary.BigEndian.PutUint16(a[6:], op)
	copy(a[8:14], sha[:])
	copy(a[14:18], spa[:])
	copy(a[18:24], tha[:])
	copy(a[24:28], tpa[:])
}

// unicast reports whether mac can be a host's own address: not zero, not
// broadcast or multicast (the group bit).
func unicast(mac [6]byte) bool {
	return mac != [6]byte{} && mac[0]&1 == 0
}
