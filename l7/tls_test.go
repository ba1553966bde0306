package l7

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// helloView is everything a ClientHello reports, as strings for cmp.Diff.
// Only the status is kept unless it is Done.
type helloView struct {
	Status     Status
	Len        int
	SNI        string
	SessionID  string
	ALPN       []string
	MaxVersion uint16
}

// viewHello reads the accessors of h, which returned st on buf, checking
// that every slice lies inside buf or inside h's own copy of split fields.
func viewHello(t testing.TB, h *ClientHello, buf []byte, st Status) helloView {
	t.Helper()
	if st != Done {
		return helloView{Status: st}
	}
	if h.Len() > len(buf) {
		t.Fatalf("Len %d > len(buf) %d", h.Len(), len(buf))
	}
	inBuf := func(what string, s []byte) string {
		if len(s) > 0 && !aliases(buf, s) && !aliases(h.frag[:], s) {
			t.Fatalf("%s %q aliases neither buf nor h", what, s)
		}
		return string(s)
	}
	v := helloView{
		Status:     st,
		Len:        h.Len(),
		SNI:        inBuf("SNI", h.SNI(buf)),
		SessionID:  inBuf("session id", h.SessionID(buf)),
		MaxVersion: h.MaxVersion(),
	}
	for i := range h.NumALPN() {
		p := inBuf("ALPN", h.ALPN(buf, i))
		if !h.HasALPN(buf, p) {
			t.Fatalf("HasALPN(%q) = false", p)
		}
		v.ALPN = append(v.ALPN, p)
	}
	return v
}

func parseHello(t testing.TB, buf []byte, max int) helloView {
	return parseHelloAt(t, buf, max, len(buf))
}

// parseHelloAt parses buf[:cut] and then buf, as two segments.
func parseHelloAt(t testing.TB, buf []byte, max, cut int) helloView {
	var h ClientHello
	return viewHello(t, &h, buf, feedAt(&h, buf, max, cut))
}

// parseHelloBytewise feeds buf one byte at a time and returns the last result.
func parseHelloBytewise(t testing.TB, buf []byte, max int) helloView {
	var h ClientHello
	return viewHello(t, &h, buf, feedBytewise(&h, buf, max))
}

// Builders of TLS wire bytes.

func tlsCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
func tlsU16(n int) []byte           { return []byte{byte(n >> 8), byte(n)} }

func tlsVec8(parts ...[]byte) []byte {
	b := tlsCat(parts...)
	return tlsCat([]byte{byte(len(b))}, b)
}

func tlsVec16(parts ...[]byte) []byte {
	b := tlsCat(parts...)
	return tlsCat(tlsU16(len(b)), b)
}

func tlsExt(typ int, data ...[]byte) []byte { return tlsCat(tlsU16(typ), tlsVec16(data...)) }

func tlsHandshake(typ byte, body []byte) []byte {
	n := len(body)
	return tlsCat([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, body)
}

func tlsRecord(typ byte, version int, fragment []byte) []byte {
	return tlsCat([]byte{typ}, tlsU16(version), tlsU16(len(fragment)), fragment)
}

// oneRecord puts a ClientHello body in one handshake record.
func oneRecord(body []byte) []byte {
	return tlsRecord(recordTypeHandshake, 0x0301, tlsHandshake(typeClientHello, body))
}

// The usual parts of a ClientHello body.
var (
	stdVersion = tlsU16(0x0303)
	stdRandom  = bytes.Repeat([]byte{0xab}, randomLen)
	noSID      = tlsVec8()
	stdSuites  = tlsVec16(tlsU16(0x1301), tlsU16(0xc02f))
	stdComp    = tlsVec8([]byte{0})
	sid32      = bytes.Repeat([]byte{0x5e}, maxSessionID)
)

// helloWith is a ClientHello record with the usual parts and exts.
func helloWith(exts ...[]byte) []byte {
	return oneRecord(tlsCat(stdVersion, stdRandom, noSID, stdSuites, stdComp, tlsVec16(exts...)))
}

func sniExt(entries ...[]byte) []byte { return tlsExt(extServerName, tlsVec16(entries...)) }
func sniEntry(typ byte, name string) []byte {
	return tlsCat([]byte{typ}, tlsVec16([]byte(name)))
}

func alpnExt(protos ...string) []byte {
	var list [][]byte
	for _, p := range protos {
		list = append(list, tlsVec8([]byte(p)))
	}
	return tlsExt(extALPN, tlsVec16(list...))
}

func versionsExt(vs ...int) []byte {
	var list [][]byte
	for _, v := range vs {
		list = append(list, tlsU16(v))
	}
	return tlsExt(extSupportedVersions, tlsVec8(list...))
}

// helloRecords cuts the handshake message carried by the records in recs
// at the given offsets (increasing, inside the message) into new records.
func helloRecords(recs []byte, cuts []int) []byte {
	msg := handshakeMessage(recs)
	var out []byte
	prev := 0
	for _, c := range append(cuts, len(msg)) {
		out = append(out, tlsRecord(recordTypeHandshake, 0x0303, msg[prev:c])...)
		prev = c
	}
	return out
}

// recordsOfSize re-records the handshake message of recs in records of
// size bytes (the last one shorter).
func recordsOfSize(recs []byte, size int) []byte {
	var cuts []int
	for c := size; c < len(handshakeMessage(recs)); c += size {
		cuts = append(cuts, c)
	}
	return helloRecords(recs, cuts)
}

// handshakeMessage concatenates the fragments of the well-formed records
// in recs.
func handshakeMessage(recs []byte) []byte {
	var msg []byte
	for len(recs) > 0 {
		n := recordHeaderLen + (int(recs[3])<<8 | int(recs[4]))
		msg = append(msg, recs[recordHeaderLen:n]...)
		recs = recs[n:]
	}
	return msg
}

// helloCase is a hand-built input; for a Done case, Len is filled in by
// helloCases as len(in).
type helloCase struct {
	name  string
	in    []byte
	after []byte // bytes after the hello
	max   int    // 0: default
	want  helloView
}

func (c helloCase) input() []byte { return tlsCat(c.in, c.after) }

// fullHello has every field the parser keeps, next to ones it skips.
var fullHello = oneRecord(tlsCat(stdVersion, stdRandom, tlsVec8(sid32), stdSuites, stdComp, tlsVec16(
	tlsExt(0x1a1a),
	sniExt(sniEntry(hostNameType, "www.Example.com")),
	tlsExt(10, tlsVec16(tlsU16(29), tlsU16(23))),
	alpnExt("h2", "http/1.1"),
	versionsExt(0x7a7a, 0x0304, 0x0303),
	tlsExt(21, make([]byte, 40)),
	tlsExt(extPreSharedKey, []byte{1, 2, 3}),
)))

var fullView = helloView{
	Status: Done, SNI: "www.Example.com", SessionID: string(sid32),
	ALPN: []string{"h2", "http/1.1"}, MaxVersion: 0x0304,
}

var validHelloCases = []helloCase{
	{name: "all fields", in: fullHello, want: fullView},
	{
		name: "no extensions",
		in:   oneRecord(tlsCat(tlsU16(0x0302), stdRandom, noSID, stdSuites, stdComp)),
		want: helloView{Status: Done, MaxVersion: 0x0302},
	},
	{name: "empty extension block", in: helloWith(), want: helloView{Status: Done, MaxVersion: 0x0303}},
	{
		name: "host_name after another name type",
		in:   helloWith(sniExt(sniEntry(7, "ignored"), sniEntry(hostNameType, "a.example"))),
		want: helloView{Status: Done, SNI: "a.example", MaxVersion: 0x0303},
	},
	{
		name: "SNI of 255 bytes",
		in:   helloWith(sniExt(sniEntry(hostNameType, strings.Repeat("a", 255)))),
		want: helloView{Status: Done, SNI: strings.Repeat("a", 255), MaxVersion: 0x0303},
	},
	{
		name: "more ALPN names than kept",
		in:   helloWith(alpnExt("p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9")),
		want: helloView{Status: Done, ALPN: []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"}, MaxVersion: 0x0303},
	},
	{
		name: "only GREASE versions",
		in:   helloWith(versionsExt(0x0a0a, 0xfafa)),
		want: helloView{Status: Done, MaxVersion: 0x0303},
	},
	{
		name:  "early data after the hello",
		in:    fullHello,
		after: tlsCat(tlsRecord(20, 0x0303, []byte{1}), tlsRecord(23, 0x0303, []byte("early"))),
		want:  fullView,
	},
	{name: "split over three records", in: helloRecords(fullHello, []int{3, 100}), want: fullView},
	{name: "exactly at the bound", in: fullHello, max: len(fullHello), want: fullView},
	{
		name: "record version 0x0304",
		in:   tlsRecord(recordTypeHandshake, 0x0304, handshakeMessage(helloWith())),
		want: helloView{Status: Done, MaxVersion: 0x0303},
	},
}

var badHelloCases = []helloCase{
	// Record layer.
	{name: "alert", in: tlsRecord(21, 0x0301, []byte{2, 40})},
	{name: "change_cipher_spec first", in: tlsCat(tlsRecord(20, 0x0303, []byte{1}), fullHello)},
	{name: "application data", in: tlsRecord(23, 0x0303, []byte("GET / HTTP/1.1\r\n"))},
	{name: "SSLv2 hello", in: []byte{0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15}},
	{name: "SSLv3 record", in: tlsRecord(recordTypeHandshake, 0x0300, handshakeMessage(fullHello))},
	{name: "record version 0x0305", in: tlsRecord(recordTypeHandshake, 0x0305, handshakeMessage(fullHello))},
	{name: "empty record", in: tlsCat(tlsRecord(recordTypeHandshake, 0x0301, nil), fullHello)},
	{name: "record over 2^14", in: tlsCat([]byte{recordTypeHandshake, 3, 1}, tlsU16(maxRecordLen+1), []byte{typeClientHello})},
	{name: "alert between fragments", in: tlsCat(helloRecords(fullHello, []int{50})[:55], tlsRecord(21, 0x0303, []byte{2, 40}))},
	{name: "record goes on after the hello", in: tlsRecord(recordTypeHandshake, 0x0301, tlsCat(handshakeMessage(fullHello), []byte{0}))},
	{
		name: "second handshake message in the record",
		in:   tlsRecord(recordTypeHandshake, 0x0301, tlsCat(handshakeMessage(fullHello), tlsHandshake(16, []byte{1, 2}))),
	},
	// Handshake header and fixed fields.
	{name: "server_hello", in: tlsRecord(recordTypeHandshake, 0x0303, tlsHandshake(2, handshakeMessage(fullHello)[handshakeHeaderLen:]))},
	{name: "empty handshake", in: tlsRecord(recordTypeHandshake, 0x0301, tlsHandshake(typeClientHello, nil))},
	{name: "truncated random", in: oneRecord(tlsCat(stdVersion, stdRandom[:10]))},
	{name: "session id of 33 bytes", in: oneRecord(tlsCat(stdVersion, stdRandom, tlsVec8(sid32, []byte{1}), stdSuites, stdComp))},
	{name: "session id past the end", in: oneRecord(tlsCat(stdVersion, stdRandom, []byte{32}, sid32[:8]))},
	{name: "odd cipher suites", in: oneRecord(tlsCat(stdVersion, stdRandom, noSID, tlsVec16([]byte{0x13, 0x01, 0xc0}), stdComp))},
	{name: "no cipher suites", in: oneRecord(tlsCat(stdVersion, stdRandom, noSID, tlsVec16(), stdComp))},
	{name: "no compression methods", in: oneRecord(tlsCat(stdVersion, stdRandom, noSID, stdSuites, tlsVec8()))},
	{name: "one byte for the extensions", in: oneRecord(tlsCat(stdVersion, stdRandom, noSID, stdSuites, stdComp, []byte{0}))},
	// Extension block.
	{name: "extension block shorter than its data", in: oneRecord(tlsCat(stdVersion, stdRandom, noSID, stdSuites, stdComp, tlsU16(4), tlsExt(21, []byte{0})))},
	{name: "byte after the extension block", in: oneRecord(tlsCat(stdVersion, stdRandom, noSID, stdSuites, stdComp, tlsVec16(tlsExt(21)), []byte{0}))},
	{name: "extension block longer than its data", in: oneRecord(tlsCat(stdVersion, stdRandom, noSID, stdSuites, stdComp, tlsU16(6), tlsExt(21)))},
	{name: "extension past the block", in: helloWith(tlsU16(21), tlsU16(8), []byte{0, 0})},
	{name: "truncated extension header", in: helloWith(tlsExt(21), []byte{0, 22, 0})},
	{name: "duplicate extension", in: helloWith(alpnExt("h2"), tlsExt(21), alpnExt("h2"))},
	{name: "duplicate unknown extension", in: helloWith(tlsExt(0xfe0d, []byte{1}), tlsExt(0xfe0d, []byte{2}))},
	{name: "pre_shared_key not last", in: helloWith(tlsExt(extPreSharedKey, []byte{1}), tlsExt(21))},
	// server_name.
	{name: "SNI without list", in: helloWith(tlsExt(extServerName))},
	{name: "SNI empty list", in: helloWith(sniExt())},
	{name: "SNI byte after the list", in: helloWith(tlsExt(extServerName, tlsVec16(sniEntry(0, "a.example")), []byte{0}))},
	{name: "SNI list past the extension", in: helloWith(tlsExt(extServerName, tlsU16(20), sniEntry(0, "a.example")))},
	{name: "SNI garbage after the entry", in: helloWith(sniExt(sniEntry(0, "a.example"), []byte{0}))},
	{name: "SNI name past the list", in: helloWith(sniExt([]byte{0}, tlsU16(20), []byte("a.example")))},
	{name: "SNI other name past the list", in: helloWith(sniExt([]byte{1}, tlsU16(20), []byte("x")))},
	{name: "SNI empty host_name", in: helloWith(sniExt(sniEntry(0, "")))},
	{name: "SNI with NUL", in: helloWith(sniExt(sniEntry(0, "a.example\x00.evil")))},
	{name: "SNI of 256 bytes", in: helloWith(sniExt(sniEntry(0, strings.Repeat("a", 256))))},
	{name: "SNI two host_names", in: helloWith(sniExt(sniEntry(0, "a.example"), sniEntry(0, "b.example")))},
	// ALPN.
	{name: "ALPN without list", in: helloWith(tlsExt(extALPN))},
	{name: "ALPN empty list", in: helloWith(tlsExt(extALPN, tlsVec16()))},
	{name: "ALPN empty name", in: helloWith(alpnExt("h2", ""))},
	{name: "ALPN byte after the list", in: helloWith(tlsExt(extALPN, tlsVec16(tlsVec8([]byte("h2"))), []byte{0}))},
	{name: "ALPN name past the list", in: helloWith(tlsExt(extALPN, tlsVec16([]byte{5}, []byte("h2"))))},
	{
		name: "ALPN name past the list after MaxALPN",
		in:   helloWith(tlsExt(extALPN, tlsVec16(alpnExt("a", "b", "c", "d", "e", "f", "g", "h")[6:], []byte{9, 'x'}))),
	},
	// supported_versions.
	{name: "versions without list", in: helloWith(tlsExt(extSupportedVersions))},
	{name: "versions empty list", in: helloWith(versionsExt())},
	{name: "versions odd length", in: helloWith(tlsExt(extSupportedVersions, tlsVec8([]byte{3, 4, 3})))},
	{name: "versions byte after the list", in: helloWith(tlsExt(extSupportedVersions, tlsVec8(tlsU16(0x0304)), []byte{0}))},
}

var tooLargeHelloCases = []helloCase{
	{name: "one byte over the bound", in: fullHello, max: len(fullHello) - 1},
	{name: "record header over the bound", in: tlsCat([]byte{recordTypeHandshake, 3, 1}, tlsU16(100)), max: 64},
	{
		name: "handshake length over the default bound",
		in:   tlsRecord(recordTypeHandshake, 0x0301, []byte{typeClientHello, 0, DefaultMaxHello >> 8, 0, 3, 3}),
	},
	{
		// The first record fits, but the second one, with its header,
		// will not: known as soon as the handshake header is in.
		name: "handshake length over a bound the first record fits",
		in:   helloRecords(fullHello, []int{60})[:recordHeaderLen+60],
		max:  len(helloRecords(fullHello, []int{60})) - 1,
	},
	{name: "too many extensions", in: helloWith(manyExtensions(MaxExtensions + 1)...)},
}

// manyExtensions returns n empty extensions of distinct unknown types.
func manyExtensions(n int) [][]byte {
	exts := make([][]byte, n)
	for i := range exts {
		exts[i] = tlsExt(0x1000 + i)
	}
	return exts
}

func helloCases() []helloCase {
	var cs []helloCase
	for _, c := range validHelloCases {
		c.want.Len = len(c.in)
		cs = append(cs, c)
	}
	for _, c := range badHelloCases {
		c.want = helloView{Status: Malformed}
		cs = append(cs, c)
	}
	for _, c := range tooLargeHelloCases {
		c.want = helloView{Status: TooLarge}
		cs = append(cs, c)
	}
	return cs
}

func TestClientHelloCases(t *testing.T) {
	for _, c := range helloCases() {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, parseHello(t, c.input(), c.max)); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestClientHelloMaxExtensions checks that MaxExtensions extensions are
// accepted.
func TestClientHelloMaxExtensions(t *testing.T) {
	if got := parseHello(t, helloWith(manyExtensions(MaxExtensions)...), 0).Status; got != Done {
		t.Fatalf("%d extensions: %v, want Done", MaxExtensions, got)
	}
}

// TestClientHelloSegments checks that every way of cutting the input in
// two segments, and feeding it byte by byte, gives the result of the whole.
func TestClientHelloSegments(t *testing.T) {
	for _, c := range helloCases() {
		t.Run(c.name, func(t *testing.T) {
			buf := c.input()
			for cut := range len(buf) {
				if diff := cmp.Diff(c.want, parseHelloAt(t, buf, c.max, cut)); diff != "" {
					t.Fatalf("cut at %d mismatch (-want +got):\n%s", cut, diff)
				}
			}
			if diff := cmp.Diff(c.want, parseHelloBytewise(t, buf, c.max)); diff != "" {
				t.Fatalf("byte by byte mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestClientHelloPrefixNeedMore checks that every strict prefix of a valid
// hello asks for more.
func TestClientHelloPrefixNeedMore(t *testing.T) {
	for _, c := range validHelloCases {
		t.Run(c.name, func(t *testing.T) {
			for n := range len(c.in) {
				if got := parseHello(t, c.in[:n], c.max).Status; got != NeedMore {
					t.Fatalf("prefix of %d bytes: %v, want NeedMore", n, got)
				}
			}
		})
	}
}

// checkRerecorded checks that the hello in recs, re-recorded in records of
// every size from 1 to 16 bytes and in 20 random splits, gives want (but
// for Len, the length of the new records).
func checkRerecorded(t *testing.T, recs []byte, want helloView) {
	t.Helper()
	msg := handshakeMessage(recs)
	var splits [][]byte
	for size := 1; size <= 16; size++ {
		splits = append(splits, recordsOfSize(recs, size))
	}
	rnd := mrand.New(mrand.NewPCG(uint64(len(msg)), 7))
	for range 20 {
		cuts := make([]int, 1+rnd.IntN(8))
		for i := range cuts {
			cuts[i] = 1 + rnd.IntN(len(msg)-1)
		}
		slices.Sort(cuts)
		splits = append(splits, helloRecords(recs, slices.Compact(cuts)))
	}
	for _, buf := range splits {
		want.Len = len(buf)
		if diff := cmp.Diff(want, parseHello(t, buf, MaxHelloLimit)); diff != "" {
			t.Fatalf("re-recorded as %d bytes (-want +got):\n%s", len(buf), diff)
		}
		if diff := cmp.Diff(want, parseHelloBytewise(t, buf, MaxHelloLimit)); diff != "" {
			t.Fatalf("re-recorded as %d bytes, byte by byte (-want +got):\n%s", len(buf), diff)
		}
	}
}

func TestClientHelloRecords(t *testing.T) {
	for _, c := range validHelloCases {
		t.Run(c.name, func(t *testing.T) { checkRerecorded(t, c.in, c.want) })
	}
}

// cryptoTLSCase is a ClientHello written by crypto/tls.
type cryptoTLSCase struct {
	name     string
	config   func(t testing.TB) *tls.Config
	resume   bool // first do a full handshake, then capture the resuming hello
	sni      string
	alpn     []string
	sidLen   int
	version  uint16
	ticketed bool // the hello carries a session ticket
}

var cryptoTLSCases = []cryptoTLSCase{
	{
		name:    "SNI",
		config:  func(testing.TB) *tls.Config { return &tls.Config{ServerName: "www.example.com"} },
		sni:     "www.example.com",
		sidLen:  32,
		version: tls.VersionTLS13,
	},
	{
		name:    "no SNI for an IP address",
		config:  func(testing.TB) *tls.Config { return &tls.Config{ServerName: "198.18.0.10"} },
		sidLen:  32,
		version: tls.VersionTLS13,
	},
	{
		name: "ALPN h2 and http/1.1",
		config: func(testing.TB) *tls.Config {
			return &tls.Config{ServerName: "api.example.com", NextProtos: []string{"h2", "http/1.1"}}
		},
		sni:     "api.example.com",
		alpn:    []string{"h2", "http/1.1"},
		sidLen:  32,
		version: tls.VersionTLS13,
	},
	{
		name: "ALPN over MaxALPN",
		config: func(testing.TB) *tls.Config {
			return &tls.Config{ServerName: "a.example", NextProtos: strings.Fields("a b c d e f g h i j")}
		},
		sni:     "a.example",
		alpn:    strings.Fields("a b c d e f g h"),
		sidLen:  32,
		version: tls.VersionTLS13,
	},
	{
		name: "TLS 1.2 only",
		config: func(testing.TB) *tls.Config {
			return &tls.Config{ServerName: "www.example.com", MaxVersion: tls.VersionTLS12}
		},
		sni:     "www.example.com",
		sidLen:  32, // crypto/tls always sends one (RFC 5077 and RFC 8446 4.1.2)
		version: tls.VersionTLS12,
	},
	{
		name:     "TLS 1.2 resumption with a session id",
		config:   resumingConfig,
		resume:   true,
		sni:      "www.example.com",
		sidLen:   32,
		version:  tls.VersionTLS12,
		ticketed: true,
	},
	{
		name: "TLS 1.3 only",
		config: func(testing.TB) *tls.Config {
			return &tls.Config{ServerName: "www.example.com", MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
		},
		sni:     "www.example.com",
		alpn:    []string{"http/1.1"},
		sidLen:  32,
		version: tls.VersionTLS13,
	},
}

// hello returns the ClientHello crypto/tls writes for c.
func (c cryptoTLSCase) hello(t testing.TB) []byte {
	cfg := c.config(t)
	if c.resume {
		fullHandshake(t, cfg)
	}
	return captureHello(t, cfg)
}

// firstWrite keeps the first Write made on it and drops the others.
type firstWrite struct {
	net.Conn
	once sync.Once
	got  chan []byte
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.once.Do(func() { w.got <- bytes.Clone(p) })
	return len(p), nil
}

// captureHello runs a tls.Client with cfg over net.Pipe and returns the
// bytes it writes first: its ClientHello records.
func captureHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	client, server := net.Pipe()
	w := &firstWrite{Conn: client, got: make(chan []byte, 1)}
	done := make(chan error, 1)
	go func() { done <- tls.Client(w, cfg).Handshake() }()
	hello := <-w.got
	server.Close() // the client reads EOF instead of a ServerHello
	if err := <-done; err == nil {
		t.Fatal("handshake without a server succeeded")
	}
	client.Close()
	return hello
}

var testCert = sync.OnceValues(func() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{"www.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
})

// resumingConfig is a TLS 1.2 client configuration with a session cache
// that trusts testCert.
func resumingConfig(t testing.TB) *tls.Config {
	cert, err := testCert()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return &tls.Config{
		ServerName:         "www.example.com",
		RootCAs:            roots,
		MaxVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(1),
	}
}

// fullHandshake completes a handshake of a client with cfg against a
// server with testCert over net.Pipe, filling cfg's session cache.
func fullHandshake(t testing.TB, cfg *tls.Config) {
	t.Helper()
	cert, err := testCert()
	if err != nil {
		t.Fatal(err)
	}
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	done := make(chan error, 1)
	go func() { done <- tls.Server(server, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake() }()
	if err := tls.Client(client, cfg).Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// cryptoTLSSees returns what a crypto/tls server reads in hello.
func cryptoTLSSees(t testing.TB, hello []byte) *tls.ClientHelloInfo {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		client.Write(hello)
		io.Copy(io.Discard, client) // the alert, until the server closes
	}()
	var info *tls.ClientHelloInfo
	seen := errors.New("seen")
	err := tls.Server(server, &tls.Config{GetConfigForClient: func(i *tls.ClientHelloInfo) (*tls.Config, error) {
		info = i
		return nil, seen
	}}).Handshake()
	server.Close()
	client.Close()
	if info == nil {
		t.Fatalf("crypto/tls refuses the hello: %v", err)
	}
	return info
}

// TestClientHelloCryptoTLS checks the hellos crypto/tls writes field by
// field, against the configuration that made them and against what a
// crypto/tls server reads in them, then as they would arrive re-recorded.
func TestClientHelloCryptoTLS(t *testing.T) {
	for _, c := range cryptoTLSCases {
		t.Run(c.name, func(t *testing.T) {
			buf := c.hello(t)
			var h ClientHello
			h.Reset(0)
			if st := h.Parse(buf); st != Done {
				t.Fatalf("Parse = %v, want Done", st)
			}
			if h.Len() != len(buf) {
				t.Errorf("Len = %d, want %d", h.Len(), len(buf))
			}
			got := viewHello(t, &h, buf, Done)
			if got.SNI != c.sni || !slices.Equal(got.ALPN, c.alpn) || got.MaxVersion != c.version ||
				len(got.SessionID) != c.sidLen {
				t.Errorf("got SNI %q, ALPN %q, version %#x, %d-byte session id; want %q, %q, %#x, %d",
					got.SNI, got.ALPN, got.MaxVersion, len(got.SessionID), c.sni, c.alpn, c.version, c.sidLen)
			}
			// The session id follows the record and handshake headers,
			// legacy_version, random and its length byte.
			const sidOff = recordHeaderLen + handshakeHeaderLen + 2 + randomLen + 1
			if c.sidLen > 0 && got.SessionID != string(buf[sidOff:sidOff+c.sidLen]) {
				t.Errorf("session id %x, want %x", got.SessionID, buf[sidOff:sidOff+c.sidLen])
			}
			info := cryptoTLSSees(t, buf)
			if got.SNI != info.ServerName || !slices.Equal(got.ALPN, info.SupportedProtos[:min(len(info.SupportedProtos), MaxALPN)]) ||
				got.MaxVersion != slices.Max(info.SupportedVersions) {
				t.Errorf("crypto/tls reads SNI %q, ALPN %q, versions %#x", info.ServerName, info.SupportedProtos, info.SupportedVersions)
			}
			if got, want := h.HasALPN(buf, "h2"), slices.Contains(c.alpn, "h2"); got != want {
				t.Errorf("HasALPN(h2) = %v, want %v", got, want)
			}
			if ticketed := slices.Contains(info.Extensions, 35); ticketed != c.ticketed {
				t.Errorf("session ticket extension present: %v, want %v", ticketed, c.ticketed)
			}
			checkRerecorded(t, buf, got)
		})
	}
}

func TestClientHelloSticky(t *testing.T) {
	tests := []struct {
		name  string
		first []byte
		later []byte
		max   int
		want  Status
	}{
		{name: "Done", first: fullHello, later: []byte("garbage"), want: Done},
		{name: "Malformed", first: tlsRecord(21, 0x0303, []byte{2, 40}), later: fullHello, want: Malformed},
		{name: "TooLarge", first: fullHello[:recordHeaderLen], later: fullHello[recordHeaderLen:], max: 16, want: TooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h ClientHello
			h.Reset(tt.max)
			buf := tlsCat(tt.first, tt.later)
			if got := h.Parse(buf[:len(tt.first)]); got != tt.want {
				t.Fatalf("first Parse = %v, want %v", got, tt.want)
			}
			if got := h.Parse(buf); got != tt.want {
				t.Fatalf("second Parse = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClientHelloShrunkBuffer(t *testing.T) {
	var h ClientHello
	h.Reset(0)
	if got := h.Parse(fullHello[:50]); got != NeedMore {
		t.Fatalf("Parse = %v, want NeedMore", got)
	}
	if got := h.Parse(fullHello[:20]); got != Malformed {
		t.Fatalf("Parse of a shorter buffer = %v, want Malformed", got)
	}
}

// paddedHello is a one-record hello of exactly total bytes.
func paddedHello(total int) []byte {
	base := helloWith(tlsExt(21))
	return helloWith(tlsExt(21, make([]byte, total-len(base))))
}

func TestClientHelloZeroAndReset(t *testing.T) {
	var h ClientHello // no Reset: default bound
	if got := h.Parse(paddedHello(DefaultMaxHello)); got != Done {
		t.Fatalf("zero ClientHello, %d bytes: %v, want Done", DefaultMaxHello, got)
	}
	h = ClientHello{}
	if got := h.Parse(paddedHello(DefaultMaxHello + 1)); got != TooLarge {
		t.Fatalf("zero ClientHello, %d bytes: %v, want TooLarge", DefaultMaxHello+1, got)
	}
	// A handshake header announcing n bytes, in a full-size first record.
	announce := func(n int) []byte {
		return tlsCat([]byte{recordTypeHandshake, 3, 1}, tlsU16(maxRecordLen), []byte{typeClientHello, byte(n >> 16), byte(n >> 8), byte(n)})
	}
	h.Reset(2 * MaxHelloLimit)
	if got := h.Parse(announce(MaxHelloLimit / 2)); got != NeedMore {
		t.Fatalf("hello of %d bytes: %v, want NeedMore", MaxHelloLimit/2, got)
	}
	h.Reset(2 * MaxHelloLimit)
	if got := h.Parse(announce(MaxHelloLimit)); got != TooLarge {
		t.Fatalf("hello of %d bytes with a bound clamped to %d: %v, want TooLarge", MaxHelloLimit, MaxHelloLimit, got)
	}
}

func TestLooksLikeTLS(t *testing.T) {
	if !LooksLikeTLS(fullHello[0]) {
		t.Error("a ClientHello does not look like TLS")
	}
	for _, first := range []byte("GPHODCT\r\n") {
		if LooksLikeTLS(first) {
			t.Errorf("%q looks like TLS", first)
		}
	}
}

// TestIsGREASE checks isGREASE against the list of RFC 8701: 0x0A0A,
// 0x1A1A, ..., 0xFAFA.
func TestIsGREASE(t *testing.T) {
	var grease []int
	for i := range 16 {
		grease = append(grease, i<<12|0x0a00|i<<4|0x0a)
	}
	for v := range 1 << 16 {
		if got, want := isGREASE(v), slices.Contains(grease, v); got != want {
			t.Errorf("isGREASE(%#04x) = %v, want %v", v, got, want)
		}
	}
}

func TestClientHelloNoAllocs(t *testing.T) {
	cfg := &tls.Config{ServerName: "www.example.com", NextProtos: []string{"h2", "http/1.1"}}
	buf := captureHello(t, cfg)
	split := recordsOfSize(buf, 7) // every field crosses a record boundary
	var h ClientHello
	tests := []struct {
		name string
		fn   func()
	}{
		{name: "Parse", fn: func() {
			h.Reset(0)
			if h.Parse(buf) != Done {
				t.Fatal("not Done")
			}
		}},
		{name: "Parse by segments", fn: func() {
			h.Reset(0)
			for n := 100; n < len(buf); n += 100 {
				h.Parse(buf[:n])
			}
			if h.Parse(buf) != Done {
				t.Fatal("not Done")
			}
		}},
		{name: "Parse 7-byte records", fn: func() {
			h.Reset(MaxHelloLimit)
			if h.Parse(split) != Done || string(h.SNI(split)) != "www.example.com" {
				t.Fatal("not Done")
			}
		}},
		{name: "SNI", fn: func() {
			if string(h.SNI(buf)) != "www.example.com" {
				t.Fatal("wrong SNI")
			}
		}},
		{name: "SessionID", fn: func() {
			if len(h.SessionID(buf)) != 32 {
				t.Fatal("wrong session id")
			}
		}},
		{name: "ALPN", fn: func() {
			if h.NumALPN() != 2 || string(h.ALPN(buf, 1)) != "http/1.1" {
				t.Fatal("wrong ALPN")
			}
		}},
		{name: "HasALPN", fn: func() {
			if !h.HasALPN(buf, "http/1.1") {
				t.Fatal("no http/1.1")
			}
		}},
		{name: "MaxVersion", fn: func() {
			if h.MaxVersion() != tls.VersionTLS13 {
				t.Fatal("wrong version")
			}
		}},
	}
	h.Reset(0)
	h.Parse(buf)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
				t.Fatalf("%v allocations per run, want 0", n)
			}
		})
	}
}

// benchHello parses a crypto/tls ClientHello with SNI and ALPN (about
// 1.8 KB with its post-quantum key share) laid out by layout.
func benchHello(b *testing.B, layout func(buf []byte) []byte) {
	buf := layout(captureHello(b, &tls.Config{ServerName: "www.example.com", NextProtos: []string{"h2", "http/1.1"}}))
	var h ClientHello
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		h.Reset(MaxHelloLimit)
		for n := 512; n < len(buf); n += 512 {
			h.Parse(buf[:n])
		}
		if h.Parse(buf) != Done {
			b.Fatal("not Done")
		}
	}
}

// BenchmarkClientHello parses a hello arriving in 512-byte segments.
func BenchmarkClientHello(b *testing.B) {
	benchHello(b, func(buf []byte) []byte { return buf })
}

// BenchmarkClientHelloRecords parses the same hello cut into 64-byte
// records, so that its fields cross record boundaries.
func BenchmarkClientHelloRecords(b *testing.B) {
	benchHello(b, func(buf []byte) []byte { return recordsOfSize(buf, 64) })
}
