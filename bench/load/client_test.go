package load

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeConn is a connection to a scripted server: each request written to
// it makes resp readable, at most chunk bytes per Read (0: no limit); past
// the end Read returns readErr, or io.EOF. It does not allocate.
type fakeConn struct {
	resp     []byte
	chunk    int
	readErr  error
	writeErr error

	unread  []byte
	written []byte // the last request
	closed  bool
}

func (f *fakeConn) Read(p []byte) (int, error) {
	if len(f.unread) == 0 {
		if f.readErr != nil {
			return 0, f.readErr
		}
		return 0, io.EOF
	}
	if f.chunk > 0 && len(p) > f.chunk {
		p = p[:f.chunk]
	}
	n := copy(p, f.unread)
	f.unread = f.unread[n:]
	return n, nil
}

func (f *fakeConn) Write(p []byte) (int, error) {
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	f.written = p
	f.unread = f.resp
	return len(p), nil
}

func (f *fakeConn) Close() error                     { f.closed = true; return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return fakeAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return fakeAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// fakeAddr is a fakeConn's address.
type fakeAddr struct{}

func (fakeAddr) Network() string { return "fake" }
func (fakeAddr) String() string  { return "fake" }

// dialTo returns a Dial function that always returns conn.
func dialTo(conn net.Conn) func(context.Context, string, string) (net.Conn, error) {
	return func(context.Context, string, string) (net.Conn, error) { return conn, nil }
}

// testClient returns a client for rawURL that dials with dial.
func testClient(t testing.TB, rawURL string, keepAlive bool, dial func(context.Context, string, string) (net.Conn, error)) *client {
	t.Helper()
	tg, err := newTarget(rawURL, keepAlive)
	if err != nil {
		t.Fatal(err)
	}
	return newClient(context.Background(), tg, &Config{KeepAlive: keepAlive, Dial: dial})
}

func TestNewTarget(t *testing.T) {
	tests := []struct {
		url, wantAddr, wantReq, wantErr string
		keepAlive                       bool
	}{
		{url: "http://example.com:8080/p?q=1#frag", keepAlive: true, wantAddr: "example.com:8080",
			wantReq: "GET /p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: wsbench\r\n\r\n"},
		{url: "http://198.18.0.100", wantAddr: "198.18.0.100:80",
			wantReq: "GET / HTTP/1.1\r\nHost: 198.18.0.100\r\nUser-Agent: wsbench\r\nConnection: close\r\n\r\n"},
		{url: "http://[2001:db8::1]/x", keepAlive: true, wantAddr: "[2001:db8::1]:80",
			wantReq: "GET /x HTTP/1.1\r\nHost: [2001:db8::1]\r\nUser-Agent: wsbench\r\n\r\n"},
		{url: "https://example.com/", wantErr: "only http://"},
		{url: "example.com/", wantErr: "only http://"},
		{url: "http:///path", wantErr: "no host"},
		{url: "http://bad host/", wantErr: "invalid character"},
	}
	for _, tt := range tests {
		tg, err := newTarget(tt.url, tt.keepAlive)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("newTarget(%q): error %v, want %q", tt.url, err, tt.wantErr)
			}
			continue
		}
		if err != nil || tg.addr != tt.wantAddr || string(tg.req) != tt.wantReq {
			t.Errorf("newTarget(%q) = %q, %q, %v; want %q, %q", tt.url, tg.addr, tg.req, err, tt.wantAddr, tt.wantReq)
		}
	}
}

func TestResponses(t *testing.T) {
	long := strings.Repeat("x", 200_000)
	tests := []struct {
		name     string
		resp     string
		chunk    int
		readErr  error
		wantKind kind
		wantBody int64
		wantKeep bool // the connection stays open
	}{
		{name: "content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", wantBody: 5, wantKeep: true},
		{name: "byte by byte", resp: "HTTP/1.1 200 OK\r\ncontent-length:5\r\n\r\nhello", chunk: 1, wantBody: 5, wantKeep: true},
		{name: "body larger than the buffer", resp: "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + long, wantBody: 200_000, wantKeep: true},
		{name: "chunked", chunk: 3, wantBody: 31, wantKeep: true,
			resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: y\r\n\r\n"},
		{name: "large chunk", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n30D40\r\n" + long + "\r\n0\r\n\r\n", wantBody: 200_000, wantKeep: true},
		{name: "server closes", resp: "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, close\r\nContent-Length: 2\r\n\r\nhi", wantBody: 2},
		{name: "HTTP/1.0", resp: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", wantBody: 2},
		{name: "HTTP/1.0 keep-alive", resp: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi", wantBody: 2, wantKeep: true},
		{name: "body until close", resp: "HTTP/1.1 200 OK\r\n\r\nuntil close", wantBody: 11},
		{name: "unknown transfer coding", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\nuntil close", wantBody: 11},
		{name: "no content", resp: "HTTP/1.1 204 No Content\r\nX-Folded: a\r\n b\r\n\r\n", wantKeep: true},
		{name: "no reason", resp: "HTTP/1.1 200\nContent-Length: 0\n\n", wantKeep: true},
		{name: "server error", resp: "HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\nbad", wantKind: kindStatus, wantKeep: true},
		{name: "continue", resp: "HTTP/1.1 100 Continue\r\n\r\n", wantKind: kindStatus},
		{name: "short body", resp: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wantKind: kindShortBody},
		{name: "short chunk", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", wantKind: kindShortBody},
		{name: "no trailer end", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", wantKind: kindShortBody},
		{name: "nothing", resp: "", wantKind: kindRead},
		{name: "half a head", resp: "HTTP/1.1 200 OK\r\nContent-", wantKind: kindRead},
		{name: "reset", resp: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", readErr: errors.New("connection reset"), wantKind: kindRead},
		{name: "timeout", resp: "HTTP/1.1 200 OK\r\n", readErr: os.ErrDeadlineExceeded, wantKind: kindTimeout},
		{name: "not HTTP", resp: "SSH-2.0-OpenSSH_9.2\r\n\r\n", wantKind: kindParse},
		{name: "bad status", resp: "HTTP/1.1 2x0 OK\r\n\r\n", wantKind: kindParse},
		{name: "status too short", resp: "HTTP/1.1 20\r\n\r\n", wantKind: kindParse},
		{name: "status too long", resp: "HTTP/1.1 2000 OK\r\n\r\n", wantKind: kindParse},
		{name: "bad length", resp: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantKind: kindParse},
		{name: "two lengths", resp: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", wantKind: kindParse},
		{name: "no colon", resp: "HTTP/1.1 200 OK\r\nContent-Length 1\r\n\r\na", wantKind: kindParse},
		{name: "bad chunk size", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantKind: kindParse},
		{name: "chunk without CRLF", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", wantKind: kindParse},
		{name: "line too long", resp: "HTTP/1.1 200 OK\r\nX: " + long + "\r\n\r\n", wantKind: kindParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := &fakeConn{resp: []byte(tt.resp), chunk: tt.chunk, readErr: tt.readErr}
			c := testClient(t, "http://example.com/", true, dialTo(conn))
			o := c.do(time.Now())
			if o.kind != tt.wantKind || o.body != tt.wantBody || !o.connected {
				t.Errorf("outcome %+v, want kind %d, body %d, connected", o, tt.wantKind, tt.wantBody)
			}
			if keep := c.conn != nil; keep != tt.wantKeep || conn.closed == keep {
				t.Errorf("connection kept %v, closed %v; want kept %v", keep, conn.closed, tt.wantKeep)
			}
		})
	}
}

func TestConnections(t *testing.T) {
	const resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
	t.Run("keep-alive", func(t *testing.T) {
		dials := 0
		conn := &fakeConn{resp: []byte(resp)}
		c := testClient(t, "http://h/", true, func(context.Context, string, string) (net.Conn, error) {
			dials++
			return conn, nil
		})
		for i := range 3 {
			if o := c.do(time.Now()); o.kind != kindOK || o.connected != (i == 0) {
				t.Errorf("request %d: %+v", i, o)
			}
		}
		if dials != 1 || conn.closed {
			t.Errorf("%d dials, closed %v; want 1 open connection", dials, conn.closed)
		}
	})
	t.Run("connection close", func(t *testing.T) {
		var conns []*fakeConn
		c := testClient(t, "http://h/", false, func(context.Context, string, string) (net.Conn, error) {
			conns = append(conns, &fakeConn{resp: []byte(resp)})
			return conns[len(conns)-1], nil
		})
		for i := range 3 {
			if o := c.do(time.Now()); o.kind != kindOK || !o.connected {
				t.Errorf("request %d: %+v", i, o)
			}
		}
		for i, conn := range conns {
			if !conn.closed || !strings.Contains(string(conn.written), "\r\nConnection: close\r\n") {
				t.Errorf("connection %d: closed %v, request %q", i, conn.closed, conn.written)
			}
		}
		if len(conns) != 3 {
			t.Errorf("%d connections, want 3", len(conns))
		}
	})
	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name          string
			dial          func(context.Context, string, string) (net.Conn, error)
			want          kind
			wantConnected bool
		}{
			{name: "refused", want: kindConnect, dial: func(context.Context, string, string) (net.Conn, error) {
				return nil, errors.New("connection refused")
			}},
			{name: "connect timeout", want: kindTimeout, dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}},
			{name: "write", want: kindWrite, wantConnected: true, dial: dialTo(&fakeConn{writeErr: errors.New("broken pipe")})},
		}
		for _, tt := range tests {
			c := testClient(t, "http://h/", true, tt.dial)
			c.timeout = time.Millisecond
			if o := c.do(time.Now()); o.kind != tt.want || o.connected != tt.wantConnected || c.conn != nil {
				t.Errorf("%s: %+v, connection kept %v; want kind %d", tt.name, o, c.conn != nil, tt.want)
			}
		}
	})
	t.Run("aborted", func(t *testing.T) {
		conn := &fakeConn{resp: []byte(resp)}
		c := testClient(t, "http://h/", true, dialTo(conn))
		c.do(time.Now())
		c.abort()
		if o := c.do(time.Now()); o.kind != kindAborted || !conn.closed {
			t.Errorf("after abort: %+v, closed %v", o, conn.closed)
		}
	})
}

// steadyWorker returns a worker of a running closed-loop run whose server
// sends resp on one keep-alive connection.
func steadyWorker(t testing.TB, resp string) *worker {
	r := &runner{hist: newHistogram()}
	return &worker{r: r, c: testClient(t, "http://h/", true, dialTo(&fakeConn{resp: []byte(resp)})), hist: newHistogram()}
}

// steadyResponses are the responses of the allocation test and benchmark.
var steadyResponses = []struct{ name, resp string }{
	{"content-length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100_000)},
	{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("2710\r\n"+strings.Repeat("x", 10_000)+"\r\n", 10) + "0\r\n\r\n"},
}

func TestRequestNoAllocs(t *testing.T) {
	for _, tt := range steadyResponses {
		w := steadyWorker(t, tt.resp)
		w.request(time.Now()) // connects
		if allocs := testing.AllocsPerRun(100, func() { w.request(time.Now()) }); allocs != 0 {
			t.Errorf("%s: %v allocations per request, want 0", tt.name, allocs)
		}
		if w.requests != 102 || w.bodyBytes != 102*100_000 || w.connects != 1 || w.hist.TotalCount() != 102 {
			t.Errorf("%s: %d requests, %d body bytes, %d connects, %d latencies; want 102, %d, 1, 102",
				tt.name, w.requests, w.bodyBytes, w.connects, w.hist.TotalCount(), 102*100_000)
		}
	}
}

func BenchmarkRequest(b *testing.B) {
	for _, tt := range steadyResponses {
		b.Run(tt.name, func(b *testing.B) {
			w := steadyWorker(b, tt.resp)
			b.ReportAllocs()
			b.SetBytes(100_000)
			for b.Loop() {
				w.request(time.Now())
			}
		})
	}
}

func FuzzResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), 0)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: 1\r\n\r\n"), 2)
	f.Add([]byte("HTTP/1.0 500 x\r\nConnection: keep-alive\r\n\r\nbody"), 1)
	f.Fuzz(func(t *testing.T, resp []byte, chunk int) {
		conn := &fakeConn{resp: resp, chunk: chunk & 0xff}
		c := testClient(t, "http://h/", true, dialTo(conn))
		o := c.do(time.Now())
		if o.kind >= numKinds || o.kind == kindAborted || o.kind == kindLate || o.body < 0 || o.body > int64(len(resp)) ||
			o.kind != kindOK && o.body != 0 {
			t.Errorf("outcome %+v for %d response bytes", o, len(resp))
		}
		if (c.conn == nil) != conn.closed {
			t.Errorf("connection kept %v but closed %v", c.conn != nil, conn.closed)
		}
	})
}
