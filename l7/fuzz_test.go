package l7

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics, that what it reports lies
// inside the buffer and within the limit, that a Done head ends with its
// empty line, and that parsing the whole buffer at once gives the same
// result as feeding it one byte at a time and as cutting it in two.
// The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, c := range allCases() {
		f.Add(c.input(), uint16(c.maxHead))
	}
	f.Add([]byte(browserHead), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, maxHead uint16) {
		whole := parseWhole(t, data, int(maxHead))
		if whole.Status < NeedMore || whole.Status > TooLarge {
			t.Fatalf("invalid status %v", whole.Status)
		}
		if whole.Status == Done {
			limit := int(maxHead)
			if limit == 0 {
				limit = DefaultMaxHead
			}
			if whole.HeadLen > limit {
				t.Fatalf("HeadLen %d over the limit %d", whole.HeadLen, limit)
			}
			head := data[:whole.HeadLen]
			if !bytes.HasSuffix(head, []byte("\n\n")) && !bytes.HasSuffix(head, []byte("\n\r\n")) {
				t.Fatalf("head %q does not end with an empty line", head)
			}
		}
		if diff := cmp.Diff(whole, parseBytewise(t, data, int(maxHead))); diff != "" {
			t.Fatalf("byte by byte differs (-whole +bytewise):\n%s", diff)
		}
		if cut := len(data) / 2; len(data) > 0 {
			if diff := cmp.Diff(whole, parseAt(t, data, int(maxHead), cut)); diff != "" {
				t.Fatalf("cut at %d differs (-whole +cut):\n%s", cut, diff)
			}
		}
	})
}

// FuzzParseNetHTTP is a differential check: a head the parser accepts must
// be accepted by net/http's ReadRequest too (after the empty lines we skip
// and it does not), with the same method, host and body framing. Being
// stricter than net/http is fine; being laxer is how smuggling starts.
//
// Inputs it found, kept in testdata/fuzz/FuzzParseNetHTTP:
//   - bad_percent_escape: "%0X" in the target was accepted; now Malformed.
//   - fragment_in_target: "#" in the target was accepted; now Malformed.
//
// Transfer-Encoding lists such as "gzip, chunked" were accepted too before
// the parser was limited to the single value "chunked".
func FuzzParseNetHTTP(f *testing.F) {
	for _, c := range allCases() {
		f.Add(c.input())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		r.Reset(0)
		if r.Parse(data) != Done {
			return
		}
		head := bytes.TrimLeft(data[:r.HeadLen()], "\r\n")
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("Parse accepts %q, net/http: %v", head, err)
		}
		if req.Method != string(r.Method(data)) {
			t.Fatalf("method %q, net/http %q", r.Method(data), req.Method)
		}
		host := req.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]"
			}
		}
		if !strings.EqualFold(host, string(r.Host(data))) {
			t.Fatalf("host %q, net/http %q", r.Host(data), req.Host)
		}
		cl, hasCL := r.ContentLength()
		if (hasCL && cl != req.ContentLength) || r.Chunked() != (len(req.TransferEncoding) > 0) {
			t.Fatalf("framing: length %d (%v) chunked %v, net/http length %d, %v",
				cl, hasCL, r.Chunked(), req.ContentLength, req.TransferEncoding)
		}
	})
}
