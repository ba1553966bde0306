// Package header holds views over Ethernet, ARP, IPv4 and TCP headers: a
// view is the frame's own bytes with accessors and setters, so decoding a
// frame copies and allocates nothing. Check a view's validity (the Parse
// functions) before calling its accessors.
package header

import (
	"encoding/binary"
	"errors"
)

// Sentinel errors of frame parsing. They are values, not formatted, so a
// flood of bad frames costs a comparison and a counter, not an allocation.
var (
	ErrTruncated   = errors.New("truncated header")
	ErrVersion     = errors.New("not IPv4")
	ErrIHL         = errors.New("bad IPv4 header length")
	ErrTotalLength = errors.New("bad IPv4 total length")
	ErrFragment    = errors.New("IPv4 fragment")
	ErrProtocol    = errors.New("not TCP")
	ErrDataOffset  = errors.New("bad TCP data offset")
	ErrOptions     = errors.New("bad TCP options")
	ErrChecksum    = errors.New("bad checksum")
)

// Ethernet constants.
const (
	EthernetLen   = 14
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
)

// Ethernet is a view of an Ethernet II header.
type Ethernet []byte

// Dst returns the destination MAC address.
func (e Ethernet) Dst() []byte { return e[0:6] }

// Src returns the source MAC address.
func (e Ethernet) Src() []byte { return e[6:12] }

// Type returns the EtherType.
func (e Ethernet) Type() uint16 { return binary.BigEndian.Uint16(e[12:14]) }

// SetAddrs sets the destination and source MAC addresses.
func (e Ethernet) SetAddrs(dst, src []byte) {
	copy(e[0:6], dst)
	copy(e[6:12], src)
}

// Encode writes a complete Ethernet header.
func (e Ethernet) Encode(dst, src []byte, typ uint16) {
	e.SetAddrs(dst, src)
	binary.BigEndian.PutUint16(e[12:14], typ)
}

// IPv4 constants.
const (
	IPv4MinLen   = 20
	ProtocolTCP  = 6
	ipv4FlagMF   = 0x2000
	ipv4FragMask = 0x1FFF
)

// IPv4 is a view of an IPv4 header (and what follows it).
type IPv4 []byte

// ParseIPv4 checks b as an IPv4 packet that is not a fragment and returns the
// view, trimmed to its total length (Ethernet padding dropped). It does not
// verify the header checksum: see IPv4.ChecksumValid.
func ParseIPv4(b []byte) (IPv4, error) {
	if len(b) < IPv4MinLen {
		return nil, ErrTruncated
	}
	if b[0]>>4 != 4 {
		return nil, ErrVersion
	}
	ihl := int(b[0]&0xF) * 4
	if ihl < IPv4MinLen || ihl > len(b) {
		return nil, ErrIHL
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	// A GSO super-frame's total length may be 0 or stale; the caller passes
	// such frames with their real length (see ring vnet headers), so only a
	// length that is too short or longer than the frame is an error.
	if total < ihl || total > len(b) {
		return nil, ErrTotalLength
	}
	if binary.BigEndian.Uint16(b[6:8])&(ipv4FlagMF|ipv4FragMask) != 0 {
		return nil, ErrFragment
	}
	return IPv4(b[:total]), nil
}

// HeaderLen returns the header length in bytes.
func (ip IPv4) HeaderLen() int { return int(ip[0]&0xF) * 4 }

// TotalLen returns the total length field.
func (ip IPv4) TotalLen() int { return int(binary.BigEndian.Uint16(ip[2:4])) }

// Protocol returns the protocol number.
func (ip IPv4) Protocol() uint8 { return ip[9] }

// TTL returns the time to live.
func (ip IPv4) TTL() uint8 { return ip[8] }

// Src returns the source address.
func (ip IPv4) Src() [4]byte { return [4]byte(ip[12:16]) }

// Dst returns the destination address.
func (ip IPv4) Dst() [4]byte { return [4]byte(ip[16:20]) }

// Payload returns the bytes after the header.
func (ip IPv4) Payload() []byte { return ip[ip.HeaderLen():] }

// ChecksumValid reports whether the header checksum is right.
func (ip IPv4) ChecksumValid() bool { return Checksum(ip[:ip.HeaderLen()], 0) == 0xFFFF }

// SetChecksum computes and stores the header checksum, over HeaderLen
// bytes.
func (ip IPv4) SetChecksum() {
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:12], ^Checksum(ip[:ip.HeaderLen()], 0))
}

// Encode writes a 20-byte IPv4 header without options, with its checksum,
// for a packet of total bytes.
func (ip IPv4) Encode(src, dst [4]byte, protocol uint8, total int, id uint16) {
	ip[0] = 0x45
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:4], uint16(total))
	binary.BigEndian.PutUint16(ip[4:6], id)
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64
	ip[9] = protocol
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	ip.SetChecksum()
}

// PseudoSum returns the one's complement sum of the IPv4 pseudo-header of a
// transport segment of length n.
func PseudoSum(src, dst [4]byte, protocol uint8, n int) uint32 {
	s := uint32(src[0])<<8 | uint32(src[1])
	s += uint32(src[2])<<8 | uint32(src[3])
	s += uint32(dst[0])<<8 | uint32(dst[1])
	s += uint32(dst[2])<<8 | uint32(dst[3])
	s += uint32(protocol)
	s += uint32(n)
	return s
}

// Checksum returns the folded 16-bit one's complement sum of b added to the
// partial sum initial (not inverted).
func Checksum(b []byte, initial uint32) uint16 {
	s := uint64(initial)
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		s += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xFFFF + s>>16
	}
	return uint16(s)
}
