package l7

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
)

func TestErrorResponse(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   int
	}{
		{name: "bad request", status: 400, want: 400},
		{name: "not found", status: 404, want: 404},
		{name: "request timeout", status: 408, want: 408},
		{name: "header fields too large", status: 431, want: 431},
		{name: "internal error", status: 500, want: 500},
		{name: "service unavailable", status: 503, want: 503},
		{name: "gateway timeout", status: 504, want: 504},
		{name: "unknown status falls back to 500", status: 418, want: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := ErrorResponse(tt.status)
			if cap(raw) != len(raw) {
				t.Errorf("cap %d != len %d: an append would write into the shared response", cap(raw), len(raw))
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
			if err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if resp.StatusCode != tt.want || resp.ProtoMinor != 1 {
				t.Errorf("status %d HTTP/1.%d, want %d HTTP/1.1", resp.StatusCode, resp.ProtoMinor, tt.want)
			}
			if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) || resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %q, body %d bytes", got, len(body))
			}
			if !resp.Close || resp.Header.Get("Content-Type") != "text/plain" {
				t.Errorf("Close %v, Content-Type %q", resp.Close, resp.Header.Get("Content-Type"))
			}
			if want := strconv.Itoa(tt.want) + " " + http.StatusText(tt.want) + "\n"; string(body) != want {
				t.Errorf("body %q, want %q", body, want)
			}
			if !bytes.HasSuffix(raw, body) || bytes.Count(raw, []byte("\r\n\r\n")) != 1 {
				t.Errorf("trailing bytes after the body in %q", raw)
			}
		})
	}
}
