package l7

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzClientHello checks that Parse never panics; that a Done hello lies
// inside the buffer and within the bound, with every field inside the
// buffer or the ClientHello (viewHello checks that); that the result does
// not depend on how the bytes were cut into segments; and that a Done hello
// re-recorded in records of recordSize+1 bytes gives the same fields.
//
// The seed corpus in testdata/fuzz/FuzzClientHello holds hellos written by
// crypto/tls (TLS 1.3 with SNI and ALPN, without SNI, a TLS 1.2 resumption
// with a session id and a ticket), the same split over several records,
// and malformed or oversized ones; the hand-built cases of tls_test.go and
// fresh crypto/tls hellos are added here.
func FuzzClientHello(f *testing.F) {
	for _, c := range helloCases() {
		f.Add(c.input(), uint8(len(c.name)))
	}
	for _, c := range cryptoTLSCases {
		f.Add(c.hello(f), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, recordSize uint8) {
		whole := parseHello(t, data, 0)
		if whole.Status < NeedMore || whole.Status > TooLarge {
			t.Fatalf("invalid status %v", whole.Status)
		}
		if whole.Len > DefaultMaxHello {
			t.Fatalf("Len %d over the bound %d", whole.Len, DefaultMaxHello)
		}
		if diff := cmp.Diff(whole, parseHelloBytewise(t, data, 0)); diff != "" {
			t.Fatalf("byte by byte differs (-whole +bytewise):\n%s", diff)
		}
		if cut := len(data) / 2; len(data) > 0 {
			if diff := cmp.Diff(whole, parseHelloAt(t, data, 0, cut)); diff != "" {
				t.Fatalf("cut at %d differs (-whole +cut):\n%s", cut, diff)
			}
		}
		if whole.Status != Done {
			return
		}
		recs := recordsOfSize(data[:whole.Len], int(recordSize)+1)
		want := whole
		want.Len = len(recs)
		if diff := cmp.Diff(want, parseHello(t, recs, MaxHelloLimit)); diff != "" {
			t.Fatalf("in records of %d bytes (-want +got):\n%s", int(recordSize)+1, diff)
		}
	})
}
