package serve

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
)

// ProxyVersion is the version of the PROXY protocol header
// (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt) that an
// Upstream writes to the local server ahead of each connection's bytes, so
// that the server learns the client's address and port, and the VIP and
// port the client connected to.
type ProxyVersion uint8

// PROXY protocol versions.
const (
	ProxyNone ProxyVersion = 0 // no header
	ProxyV1   ProxyVersion = 1 // text: "PROXY TCP4 198.18.0.10 198.18.0.100 40312 80\r\n"
	ProxyV2   ProxyVersion = 2 // binary: signature, command, family, length, addresses, ports
)

// MaxProxyHeaderLen is the length of the longest header AppendProxyHeader
// appends: version 1 with two full-length IPv6 addresses (the spec's 107
// bytes; version 2 needs at most 52).
const MaxProxyHeaderLen = 107

// Version 2 header fields.
const (
	proxyV2Sig     = "\r\n\r\n\x00\r\nQUIT\n" // the 12-byte signature
	proxyV2Command = 0x21                     // version 2, command PROXY
	proxyV2Unspec  = 0x00                     // AF_UNSPEC, unknown transport
	proxyV2TCP4    = 0x11                     // AF_INET, STREAM
	proxyV2TCP6    = 0x21                     // AF_INET6, STREAM
	proxyV2Len4    = 4 + 4 + 2 + 2            // address block of TCP4
	proxyV2Len6    = 16 + 16 + 2 + 2          // address block of TCP6
)

// AppendProxyHeader appends to b the PROXY protocol header of version v for
// a TCP connection from src (the client) to dst (the address it connected
// to), and returns the extended slice; for ProxyNone (or an unknown
// version) it returns b unchanged. IPv4-mapped IPv6 addresses count as IPv4,
// and IPv6 zones are left out. When src and dst are not both valid and of
// the same family, the header says the addresses are unknown ("PROXY
// UNKNOWN\r\n"; in version 2 the AF_UNSPEC family with no address block),
// and the server uses the connection's own. It does not allocate when b has
// room for MaxProxyHeaderLen more bytes.
func AppendProxyHeader(b []byte, v ProxyVersion, src, dst netip.AddrPort) []byte {
	s, d := src.Addr().Unmap().WithZone(""), dst.Addr().Unmap().WithZone("")
	var family byte = proxyV2Unspec
	switch {
	case !src.IsValid() || !dst.IsValid():
	case s.Is4() && d.Is4():
		family = proxyV2TCP4
	case s.Is6() && d.Is6():
		family = proxyV2TCP6
	}
	switch v {
	case ProxyV1:
		switch family {
		case proxyV2TCP4:
			b = append(b, "PROXY TCP4 "...)
		case proxyV2TCP6:
			b = append(b, "PROXY TCP6 "...)
		default:
			return append(b, "PROXY UNKNOWN\r\n"...)
		}
		b = s.AppendTo(b)
		b = append(b, ' ')
		b = d.AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(src.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(dst.Port()), 10)
		return append(b, "\r\n"...)
	case ProxyV2:
		b = append(b, proxyV2Sig...)
		b = append(b, proxyV2Command, family)
		switch family {
		case proxyV2TCP4:
			b = binary.BigEndian.AppendUint16(b, proxyV2Len4)
			s4, d4 := s.As4(), d.As4()
			b = append(append(b, s4[:]...), d4[:]...)
		case proxyV2TCP6:
			b = binary.BigEndian.AppendUint16(b, proxyV2Len6)
			s16, d16 := s.As16(), d.As16()
			b = append(append(b, s16[:]...), d16[:]...)
		default:
			return binary.BigEndian.AppendUint16(b, 0)
		}
		b = binary.BigEndian.AppendUint16(b, src.Port())
		return binary.BigEndian.AppendUint16(b, dst.Port())
	}
	return b
}

// tcpAddrPort returns a's address and port if it is a *net.TCPAddr, else
// the zero (invalid) AddrPort.
func tcpAddrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}
