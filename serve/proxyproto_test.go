package serve

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var (
	ap = netip.MustParseAddrPort
	// v6Max is the longest IPv6 address text, as in the spec's worst case.
	v6Max = ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
)

// TestAppendProxyHeader checks exact bytes against the spec's examples
// (sections 2.1 and 2.2).
func TestAppendProxyHeader(t *testing.T) {
	sig := "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"
	tests := []struct {
		name     string
		v        ProxyVersion
		src, dst netip.AddrPort
		want     string
	}{
		{"v1 TCP4", ProxyV1, ap("192.168.0.1:56324"), ap("192.168.0.11:443"),
			"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"},
		{"v1 TCP6", ProxyV1, ap("[2001:db8::1]:1"), ap("[2001:db8::2%eth0]:80"),
			"PROXY TCP6 2001:db8::1 2001:db8::2 1 80\r\n"},
		{"v1 worst case", ProxyV1, v6Max, v6Max,
			"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"},
		{"v1 IPv4-mapped", ProxyV1, ap("[::ffff:198.18.0.10]:40312"), ap("198.18.0.100:80"),
			"PROXY TCP4 198.18.0.10 198.18.0.100 40312 80\r\n"},
		{"v1 mixed families", ProxyV1, ap("198.18.0.10:40312"), ap("[2001:db8::2]:80"), "PROXY UNKNOWN\r\n"},
		{"v1 no address", ProxyV1, netip.AddrPort{}, ap("198.18.0.100:80"), "PROXY UNKNOWN\r\n"},
		{"v2 TCP4", ProxyV2, ap("192.168.0.1:56324"), ap("192.168.0.11:443"),
			sig + "\x21\x11\x00\x0c" + "\xc0\xa8\x00\x01" + "\xc0\xa8\x00\x0b" + "\xdc\x04" + "\x01\xbb"},
		{"v2 TCP6", ProxyV2, ap("[2001:db8::1]:1"), ap("[2001:db8::ff]:65535"),
			sig + "\x21\x21\x00\x24" +
				"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" +
				"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff" +
				"\x00\x01" + "\xff\xff"},
		{"v2 IPv4-mapped", ProxyV2, ap("[::ffff:198.18.0.10]:40312"), ap("198.18.0.100:80"),
			sig + "\x21\x11\x00\x0c" + "\xc6\x12\x00\x0a" + "\xc6\x12\x00\x64" + "\x9d\x78" + "\x00\x50"},
		{"v2 unknown", ProxyV2, netip.AddrPort{}, netip.AddrPort{}, sig + "\x21\x00\x00\x00"},
		{"none", ProxyNone, ap("192.168.0.1:56324"), ap("192.168.0.11:443"), ""},
		{"unknown version", 3, ap("192.168.0.1:56324"), ap("192.168.0.11:443"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendProxyHeader([]byte("prefix"), tt.v, tt.src, tt.dst)
			if diff := cmp.Diff("prefix"+tt.want, string(got)); diff != "" {
				t.Errorf("AppendProxyHeader mismatch (-want +got):\n%s", diff)
			}
			if n := len(got) - len("prefix"); n > MaxProxyHeaderLen {
				t.Errorf("header is %d bytes, more than MaxProxyHeaderLen %d", n, MaxProxyHeaderLen)
			}
		})
	}
}

// TestProxyHeaderRoundTrip reads the headers back with a parser written
// from the spec.
func TestProxyHeaderRoundTrip(t *testing.T) {
	tests := []struct {
		src, dst netip.AddrPort
		want     proxyHeader // the addresses, once the version is set
	}{
		{ap("198.18.0.10:40312"), ap("198.18.0.100:80"), proxyHeader{src: ap("198.18.0.10:40312"), dst: ap("198.18.0.100:80")}},
		{ap("0.0.0.0:0"), ap("255.255.255.255:65535"), proxyHeader{src: ap("0.0.0.0:0"), dst: ap("255.255.255.255:65535")}},
		{ap("[::ffff:10.0.0.1]:1"), ap("10.0.0.2:2"), proxyHeader{src: ap("10.0.0.1:1"), dst: ap("10.0.0.2:2")}},
		{ap("[2001:db8::1]:443"), ap("[fe80::1%lo]:8080"), proxyHeader{src: ap("[2001:db8::1]:443"), dst: ap("[fe80::1]:8080")}},
		{v6Max, ap("[::]:0"), proxyHeader{src: v6Max, dst: ap("[::]:0")}},
		{ap("10.0.0.1:1"), ap("[2001:db8::1]:2"), proxyHeader{}},
		{netip.AddrPort{}, ap("10.0.0.2:2"), proxyHeader{}},
	}
	for _, v := range []ProxyVersion{ProxyV1, ProxyV2} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("v%d %v %v", v, tt.src, tt.dst), func(t *testing.T) {
				r := bufio.NewReader(bytes.NewReader(AppendProxyHeader(nil, v, tt.src, tt.dst)))
				got, err := readProxyHeader(r)
				if err != nil {
					t.Fatal(err)
				}
				want := tt.want
				want.version = v
				if diff := cmp.Diff(want, got, cmp.AllowUnexported(proxyHeader{}), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
					t.Errorf("read back mismatch (-want +got):\n%s", diff)
				}
				if n := r.Buffered(); n != 0 {
					t.Errorf("%d bytes left after the header", n)
				}
			})
		}
	}
}

func TestAppendProxyHeaderAllocs(t *testing.T) {
	buf := make([]byte, 0, MaxProxyHeaderLen)
	for _, v := range []ProxyVersion{ProxyV1, ProxyV2} {
		if n := testing.AllocsPerRun(100, func() { buf = AppendProxyHeader(buf[:0], v, v6Max, v6Max) }); n != 0 {
			t.Errorf("version %d: %v allocations per header, want 0", v, n)
		}
	}
}

// TestServeUpstreamProxyHeader checks that the upstream server gets the
// header, with the client's address as source and the address it connected
// to as destination, and then the client's bytes.
func TestServeUpstreamProxyHeader(t *testing.T) {
	for _, v := range []ProxyVersion{ProxyV1, ProxyV2} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ul, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ul.Close()
			l, addr := frontListener(t)
			serveInBackground(t, l, NewUpstream(ul.Addr().String(), v).Serve)
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			const request = "GET / HTTP/1.0\r\n\r\n"
			if _, err := io.WriteString(c, request); err != nil {
				t.Fatal(err)
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}

			// The upstream's side: the header, then the request to EOF.
			ul.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
			uc, err := ul.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer uc.Close()
			uc.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(uc)
			got, err := readProxyHeader(r)
			if err != nil {
				t.Fatal(err)
			}
			want := proxyHeader{version: v, src: tcpAddrPort(c.LocalAddr()), dst: tcpAddrPort(c.RemoteAddr())}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(proxyHeader{}), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("header mismatch (-want +got):\n%s", diff)
			}
			if rest, err := io.ReadAll(r); err != nil || string(rest) != request {
				t.Errorf("after the header: %q, %v; want %q", rest, err, request)
			}
			uc.Close()
			c.Close()
			waitIdle(t, l)
		})
	}
}

// proxyHeader is what readProxyHeader read; src and dst are invalid when
// the header says the addresses are unknown.
type proxyHeader struct {
	version  ProxyVersion
	src, dst netip.AddrPort
}

// readProxyHeader reads a PROXY protocol header of either version from r,
// as a server would (the spec's sections 2.1 and 2.2), leaving r at the
// first byte after it.
func readProxyHeader(r *bufio.Reader) (proxyHeader, error) {
	start, err := r.Peek(len(proxyV2Sig))
	if err != nil {
		return proxyHeader{}, err
	}
	if string(start) == proxyV2Sig {
		return readProxyV2(r)
	}
	return readProxyV1(r)
}

func readProxyV1(r *bufio.Reader) (proxyHeader, error) {
	h := proxyHeader{version: ProxyV1}
	line, err := r.ReadString('\n')
	if err != nil {
		return h, err
	}
	if len(line) > MaxProxyHeaderLen || !strings.HasSuffix(line, "\r\n") {
		return h, fmt.Errorf("v1 line %q: too long or no CRLF", line)
	}
	f := strings.Split(strings.TrimSuffix(line, "\r\n"), " ")
	if len(f) == 2 && f[0] == "PROXY" && f[1] == "UNKNOWN" {
		return h, nil
	}
	if len(f) != 6 || f[0] != "PROXY" || f[1] != "TCP4" && f[1] != "TCP6" {
		return h, fmt.Errorf("v1 line %q: not PROXY TCP4|TCP6 and 4 fields", line)
	}
	var ports [2]uint16
	for i, s := range f[4:] {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || s != strconv.FormatUint(n, 10) {
			return h, fmt.Errorf("v1 line %q: port %q", line, s)
		}
		ports[i] = uint16(n)
	}
	src, err1 := netip.ParseAddr(f[2])
	dst, err2 := netip.ParseAddr(f[3])
	if err := errors.Join(err1, err2); err != nil {
		return h, err
	}
	if is4 := f[1] == "TCP4"; src.Is4() != is4 || dst.Is4() != is4 {
		return h, fmt.Errorf("v1 line %q: addresses of another family", line)
	}
	h.src, h.dst = netip.AddrPortFrom(src, ports[0]), netip.AddrPortFrom(dst, ports[1])
	return h, nil
}

func readProxyV2(r *bufio.Reader) (proxyHeader, error) {
	h := proxyHeader{version: ProxyV2}
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return h, err
	}
	if fixed[12] != 0x21 {
		return h, fmt.Errorf("v2 version and command %#x, want 0x21", fixed[12])
	}
	block := make([]byte, binary.BigEndian.Uint16(fixed[14:]))
	if _, err := io.ReadFull(r, block); err != nil {
		return h, err
	}
	n := 0 // address length
	switch fixed[13] {
	case 0x00:
		return h, nil
	case 0x11:
		n = 4
	case 0x21:
		n = 16
	default:
		return h, fmt.Errorf("v2 family %#x", fixed[13])
	}
	if len(block) != 2*n+4 {
		return h, fmt.Errorf("v2 family %#x with a %d-byte address block", fixed[13], len(block))
	}
	src, _ := netip.AddrFromSlice(block[:n])
	dst, _ := netip.AddrFromSlice(block[n : 2*n])
	h.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(block[2*n:]))
	h.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(block[2*n+2:]))
	return h, nil
}
