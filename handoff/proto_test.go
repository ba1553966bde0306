package handoff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testState returns a consistent ConnState for a request of n bytes.
func testState(n int) ConnState {
	return ConnState{
		Client: netip.MustParseAddrPort("198.18.0.10:40000"),
		VIP:    netip.MustParseAddrPort("198.18.0.100:80"),
		SndISN: 1000,
		SndNxt: 1001,
		RcvIRS: 5000,
		RcvNxt: 5001 + uint32(n),
		SndWnd: 64240,
		RcvWnd: 65535,
		MSS:    1460,
	}
}

func TestHandoffBodyRoundTrip(t *testing.T) {
	scaled := testState(100)
	scaled.SndWScale, scaled.RcvWScale, scaled.WScaleOK, scaled.SACKOK = 7, 14, true, true
	scaled.SndWnd, scaled.RcvWnd = 3<<20, 1<<30

	wrap := testState(64 << 10)
	wrap.RcvIRS = 0xffff_fff0 // the request crosses 2^32
	wrap.RcvNxt = wrap.RcvIRS + 1 + 64<<10
	wrap.SndISN, wrap.SndNxt = 0xffff_ffff, 0

	minimal := ConnState{
		Client: netip.MustParseAddrPort("198.19.0.1:1"),
		VIP:    netip.MustParseAddrPort("198.18.0.100:443"),
		RcvNxt: 1,
		MSS:    64,
	}

	tests := []struct {
		name string
		st   ConnState
		req  []byte
	}{
		{"empty request", testState(0), nil},
		{"small GET", testState(18), []byte("GET / HTTP/1.1\r\n\r\n")},
		{"window scale and SACK", scaled, bytes.Repeat([]byte{'a'}, 100)},
		{"64 KiB request across the wrap", wrap, bytes.Repeat([]byte{0xa5}, 64<<10)},
		{"minimum values", minimal, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			b := AppendHandoffBody(prefix, &tt.st, tt.req)
			if !bytes.Equal(b[:len(prefix)], []byte("prefix")) {
				t.Fatalf("prefix overwritten: %q", b[:len(prefix)])
			}
			body := b[len(prefix):]
			if got, want := len(body), HandoffFixedLen+len(tt.req); got != want {
				t.Fatalf("body length %d, want %d", got, want)
			}
			var got ConnState
			req, err := DecodeHandoffBody(body, &got)
			if err != nil {
				t.Fatalf("DecodeHandoffBody: %v", err)
			}
			if diff := cmp.Diff(tt.st, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			if !bytes.Equal(req, tt.req) {
				t.Errorf("request: got %d bytes, want %d", len(req), len(tt.req))
			}
		})
	}
}

// TestHandoffBodyGolden pins the HANDOFF body layout of this Version, byte
// by byte, so that a layout change shows up here and bumps Version.
func TestHandoffBodyGolden(t *testing.T) {
	st := ConnState{
		Client:    netip.MustParseAddrPort("198.18.0.10:40000"),
		VIP:       netip.MustParseAddrPort("198.18.0.100:443"),
		SndISN:    0x01020304,
		SndNxt:    0x01020305,
		RcvIRS:    0x0a0b0c0d,
		RcvNxt:    0x0a0b0c11,
		SndWnd:    64240,
		RcvWnd:    65535,
		MSS:       1460,
		SndWScale: 7,
		RcvWScale: 9,
		WScaleOK:  true,
		SACKOK:    true,
	}
	want := []byte{
		familyIPv4,
		198, 18, 0, 10, 0x9c, 0x40, // client 198.18.0.10:40000
		198, 18, 0, 100, 0x01, 0xbb, // VIP 198.18.0.100:443
		0x01, 0x02, 0x03, 0x04, // SndISN
		0x01, 0x02, 0x03, 0x05, // SndNxt
		0x0a, 0x0b, 0x0c, 0x0d, // RcvIRS
		0x0a, 0x0b, 0x0c, 0x11, // RcvNxt
		0x00, 0x00, 0xfa, 0xf0, // SndWnd
		0x00, 0x00, 0xff, 0xff, // RcvWnd
		0x05, 0xb4, // MSS
		7, 9, // window scales
		flagWScaleOK | flagSACKOK,
		0, 0, 0, 3, // request length
		'G', 'E', 'T',
	}
	if got := AppendHandoffBody(nil, &st, []byte("GET")); !bytes.Equal(got, want) {
		t.Errorf("AppendHandoffBody:\n got %x\nwant %x", got, want)
	}
	if HandoffFixedLen != len(want)-len("GET") {
		t.Errorf("HandoffFixedLen = %d, want %d", HandoffFixedLen, len(want)-len("GET"))
	}
}

func TestAppendHandoffBodyIPv4Mapped(t *testing.T) {
	st := testState(0)
	st.Client = netip.MustParseAddrPort("[::ffff:198.18.0.10]:40000")
	var got ConnState
	if _, err := DecodeHandoffBody(AppendHandoffBody(nil, &st, nil), &got); err != nil {
		t.Fatalf("DecodeHandoffBody: %v", err)
	}
	if want := netip.MustParseAddrPort("198.18.0.10:40000"); got.Client != want {
		t.Errorf("client %v, want %v", got.Client, want)
	}
}

func TestDecodeHandoffBodyErrors(t *testing.T) {
	good := testState(4)
	body := func(edit func(b []byte)) []byte {
		b := AppendHandoffBody(nil, &good, []byte("GET "))
		edit(b)
		return b
	}
	be := binary.BigEndian
	v6 := good
	v6.Client = netip.MustParseAddrPort("[2001:db8::1]:40000")

	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"fixed part short by one", body(func([]byte) {})[:HandoffFixedLen-1], ErrTruncated},
		{"family 6", body(func(b []byte) { b[hoFamily] = 6 }), ErrMalformed},
		{"IPv6 address encoded", AppendHandoffBody(nil, &v6, []byte("GET ")), ErrMalformed},
		{"request length too long", body(func(b []byte) { be.PutUint32(b[hoReqLen:], 5) }), ErrMalformed},
		{"request length too short", body(func(b []byte) { be.PutUint32(b[hoReqLen:], 3) }), ErrMalformed},
		{"request length huge", body(func(b []byte) { be.PutUint32(b[hoReqLen:], 0xffff_ffff) }), ErrMalformed},
		{"RcvNxt one more", body(func(b []byte) { be.PutUint32(b[hoRcvNxt:], good.RcvNxt+1) }), ErrMalformed},
		{"RcvNxt one less", body(func(b []byte) { be.PutUint32(b[hoRcvNxt:], good.RcvNxt-1) }), ErrMalformed},
		{"SndWScale 15", body(func(b []byte) { b[hoSndWScale] = 15 }), ErrMalformed},
		{"RcvWScale 15", body(func(b []byte) { b[hoRcvWScale] = 15 }), ErrMalformed},
		{"MSS 63", body(func(b []byte) { be.PutUint16(b[hoMSS:], 63) }), ErrMalformed},
		{"unknown flag", body(func(b []byte) { b[hoFlags] |= 4 }), ErrMalformed},
		{"wscale 14 is fine", body(func(b []byte) { b[hoSndWScale], b[hoRcvWScale] = 14, 14 }), nil},
		{"MSS 64 is fine", body(func(b []byte) { be.PutUint16(b[hoMSS:], 64) }), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st ConnState
			if _, err := DecodeHandoffBody(tt.body, &st); !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestErrBody(t *testing.T) {
	b := AppendErrBody(nil, ErrCodeRecreate, "bind: address in use")
	code, reason, err := DecodeErrBody(b)
	if err != nil || code != ErrCodeRecreate || string(reason) != "bind: address in use" {
		t.Errorf("DecodeErrBody = %d, %q, %v", code, reason, err)
	}
	if code, reason, err := DecodeErrBody(AppendErrBody(nil, ErrCodeBusy, "")); err != nil || code != ErrCodeBusy || len(reason) != 0 {
		t.Errorf("empty reason: DecodeErrBody = %d, %q, %v", code, reason, err)
	}
	if _, _, err := DecodeErrBody([]byte{0}); !errors.Is(err, ErrTruncated) {
		t.Errorf("short body: err %v, want ErrTruncated", err)
	}
}

func TestLoadBody(t *testing.T) {
	for _, tt := range []struct {
		name   string
		active uint32
		health Health
	}{
		{"idle", 0, HealthUp},
		{"busy", 123456, HealthUp},
		{"draining", 0xffff_ffff, HealthDraining},
		{"down", 7, HealthDown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			active, h, err := DecodeLoadBody(AppendLoadBody(nil, tt.active, tt.health))
			if err != nil || active != tt.active || h != tt.health {
				t.Errorf("DecodeLoadBody = %d, %v, %v", active, h, err)
			}
		})
	}
	for _, tt := range []struct {
		name string
		body []byte
		want error
	}{
		{"short", []byte{0, 0, 0, 1}, ErrTruncated},
		{"long", []byte{0, 0, 0, 1, 0, 0}, ErrMalformed},
		{"health 3", []byte{0, 0, 0, 1, 3}, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := DecodeLoadBody(tt.body); !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMsgTypeString(t *testing.T) {
	for typ, want := range map[MsgType]string{
		0:          "MsgType(0)",
		MsgHello:   "HELLO",
		MsgAuthOK:  "AUTH_OK",
		MsgHandoff: "HANDOFF",
		MsgPong:    "PONG",
		MsgGoAway:  "GOAWAY",
		MsgLookup:  "LOOKUP",
		MsgOwners:  "OWNERS",
		13:         "MsgType(13)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("MsgType(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

func TestHandoffCodecNoAllocs(t *testing.T) {
	st := testState(512)
	req := bytes.Repeat([]byte{'x'}, 512)
	buf := make([]byte, 0, HandoffFixedLen+len(req))
	var got ConnState
	allocs := testing.AllocsPerRun(100, func() {
		b := AppendHandoffBody(buf[:0], &st, req)
		if _, err := DecodeHandoffBody(b, &got); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendHandoffBody+DecodeHandoffBody: %v allocs, want 0", allocs)
	}
}

func BenchmarkAppendHandoffBody(b *testing.B) {
	st := testState(512)
	req := bytes.Repeat([]byte{'x'}, 512)
	buf := make([]byte, 0, HandoffFixedLen+len(req))
	b.ReportAllocs()
	b.SetBytes(int64(HandoffFixedLen + len(req)))
	for b.Loop() {
		buf = AppendHandoffBody(buf[:0], &st, req)
	}
}

func BenchmarkDecodeHandoffBody(b *testing.B) {
	st := testState(512)
	body := AppendHandoffBody(nil, &st, bytes.Repeat([]byte{'x'}, 512))
	var got ConnState
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeHandoffBody(body, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeHandoffBody checks that DecodeHandoffBody never panics and that
// whatever it accepts encodes back to the same bytes.
func FuzzDecodeHandoffBody(f *testing.F) {
	st := testState(18)
	f.Add(AppendHandoffBody(nil, &st, []byte("GET / HTTP/1.1\r\n\r\n")))
	f.Add([]byte{familyIPv4})
	f.Fuzz(func(t *testing.T, body []byte) {
		var st ConnState
		req, err := DecodeHandoffBody(body, &st)
		if err != nil {
			return
		}
		if len(req) > 0 && &req[0] != &body[HandoffFixedLen] {
			t.Fatal("request does not alias body")
		}
		if again := AppendHandoffBody(nil, &st, req); !bytes.Equal(again, body) {
			t.Fatalf("round trip:\n got %x\nwant %x", again, body)
		}
	})
}
