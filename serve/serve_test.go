package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"webswitch/handoff/agent"
)

// localServer runs a loopback TCP server that calls handle for each
// connection (and closes it after), until the test ends, and returns its
// address.
func localServer(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}

// frontListener returns a Listener fed by a loopback TCP listener, standing in
// for the agent's deliveries, and its dialable address. Both close at test
// end; the feeding goroutine is waited for.
func frontListener(t *testing.T) (*agent.Listener, string) {
	t.Helper()
	tl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := agent.NewListener(tl.Addr())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			l.Deliver(c)
		}
	}()
	t.Cleanup(func() {
		tl.Close()
		<-done
		l.Close()
	})
	return l, tl.Addr().String()
}

// serveInBackground runs serve(l) and checks at test end that it returned
// net.ErrClosed once l was closed.
func serveInBackground(t *testing.T, l *agent.Listener, serve func(net.Listener) error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- serve(l) }()
	t.Cleanup(func() {
		l.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("serve returned %v, want net.ErrClosed", err)
			}
		case <-time.After(2 * time.Second):
			t.Error("serve did not return after Close")
		}
	})
}

// waitIdle waits until l has no active connections.
func waitIdle(t *testing.T, l *agent.Listener) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); l.Active() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("Active = %d after all connections closed", l.Active())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestServeStatic(t *testing.T) {
	root := t.TempDir()
	big := randomBytes(3 << 20)
	small := []byte("hello, handed-off world\n")
	if err := os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "small.txt"), small, 0o644); err != nil {
		t.Fatal(err)
	}
	l, addr := frontListener(t)
	serveInBackground(t, l, newStatic(t, root).Serve)

	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	tests := []struct {
		name       string
		method     string
		path       string
		rangeHdr   string
		wantStatus int
		wantBody   []byte
	}{
		{name: "GET big", method: "GET", path: "/big.bin", wantStatus: 200, wantBody: big},
		{name: "GET small", method: "GET", path: "/small.txt", wantStatus: 200, wantBody: small},
		{name: "HEAD", method: "HEAD", path: "/big.bin", wantStatus: 200, wantBody: []byte{}},
		{name: "Range", method: "GET", path: "/big.bin", rangeHdr: "bytes=1000-1999", wantStatus: 206, wantBody: big[1000:2000]},
		{name: "missing", method: "GET", path: "/nope", wantStatus: 404},
		{name: "GET big again", method: "GET", path: "/big.bin", wantStatus: 200, wantBody: big},
	}
	var conns int
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
				if !info.Reused {
					conns++
				}
			}}
			ctx := httptrace.WithClientTrace(context.Background(), trace)
			req, err := http.NewRequestWithContext(ctx, tt.method, "http://"+addr+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.rangeHdr != "" {
				req.Header.Set("Range", tt.rangeHdr)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantBody != nil && sha256.Sum256(body) != sha256.Sum256(tt.wantBody) {
				t.Errorf("body of %d bytes differs from the %d expected", len(body), len(tt.wantBody))
			}
			if tt.method == "HEAD" && resp.ContentLength != int64(len(big)) {
				t.Errorf("HEAD Content-Length %d, want %d", resp.ContentLength, len(big))
			}
		})
	}
	if conns != 1 {
		t.Errorf("%d connections for %d requests, want 1 (keep-alive)", conns, len(tests))
	}
	tr.CloseIdleConnections()
	waitIdle(t, l)
}

func newStatic(t *testing.T, root string) *Static {
	t.Helper()
	s, err := NewStatic(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStaticBadRoot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	for _, root := range []string{file, filepath.Join(file, "missing")} {
		if _, err := NewStatic(root); err == nil {
			t.Errorf("NewStatic(%s) = nil error, want a root error", root)
		}
	}
	dir := t.TempDir()
	s := newStatic(t, dir)
	os.Remove(dir)
	if err := s.Check(); err == nil {
		t.Error("Check of a removed root = nil, want an error")
	}
}

// TestStaticShutdown checks the drain: a response in progress completes
// byte-exact, an idle keep-alive connection is closed, and Shutdown returns
// once the response is done.
func TestStaticShutdown(t *testing.T) {
	root := t.TempDir()
	body := randomBytes(4 << 20)
	os.WriteFile(filepath.Join(root, "big"), body, 0o644)
	l, addr := frontListener(t)
	s := newStatic(t, root)
	go s.Serve(l)

	idle, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(idle, "HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil {
		t.Fatal(err)
	}

	busy, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(busy, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(busy)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1024) // the response is under way
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if n, err := idle.Read(make([]byte, 1)); err == nil {
		t.Errorf("idle keep-alive connection: read %d bytes, want it closed", n)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a response in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("response cut off: %v", err)
	}
	if got := append(head, rest...); !bytes.Equal(got, body) {
		t.Fatalf("response: %d bytes, not the file's %d", len(got), len(body))
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the response")
	}
}

func TestServeUpstreamEcho(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	defer up.Close()
	l, addr := frontListener(t)
	serveInBackground(t, l, NewUpstream(up.Listener.Addr().String(), ProxyNone).Serve)

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body := randomBytes(8 << 20)
	for i := range 2 { // the second request reuses the proxied connection
		resp, err := client.Post("http://"+addr+"/echo", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := strconv.Itoa(len(body)) + " " + fmt.Sprintf("%x", sha256.Sum256(body)); string(got) != want {
			t.Fatalf("request %d: upstream saw %q, want %q", i, got, want)
		}
	}
	tr.CloseIdleConnections()
	waitIdle(t, l)
}

func TestServeUpstreamHalfClose(t *testing.T) {
	// The upstream reads to EOF (the client's half-close), then answers and
	// closes (which the client must see as EOF).
	up := localServer(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "%d %x", n, h.Sum(nil))
	})
	l, addr := frontListener(t)
	serveInBackground(t, l, NewUpstream(up, ProxyNone).Serve)

	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	data := randomBytes(1 << 20)
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if want := fmt.Sprintf("%d %x", len(data), sha256.Sum256(data)); string(got) != want {
		t.Fatalf("answer %q, want %q", got, want)
	}
	c.Close()
	waitIdle(t, l)
}

func TestServeUpstreamUnreachable(t *testing.T) {
	// A port with nothing listening: take one, then free it.
	tl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := tl.Addr().String()
	tl.Close()
	l, addr := frontListener(t)
	serveInBackground(t, l, NewUpstream(dead, ProxyNone).Serve)
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a connection with no upstream", n)
	}
	waitIdle(t, l)
}

// TestUpstreamShutdown checks the drain of proxied connections: Shutdown
// waits while one is open and the bytes keep flowing, returns when the
// client closes; a second one still open at the deadline is closed.
func TestUpstreamShutdown(t *testing.T) {
	up := localServer(t, func(c net.Conn) { io.Copy(c, c) }) // echo
	echo := func(c net.Conn, msg string) error {
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		_, err := io.ReadFull(c, got)
		if err == nil && string(got) != msg {
			err = fmt.Errorf("echo %q, want %q", got, msg)
		}
		return err
	}
	for _, tt := range []struct {
		name     string
		deadline bool
	}{{"client closes", false}, {"deadline", true}} {
		t.Run(tt.name, func(t *testing.T) {
			l, addr := frontListener(t)
			u := NewUpstream(up, ProxyNone)
			go u.Serve(l)
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if err := echo(c, "before"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- u.Shutdown(ctx) }()
			time.Sleep(50 * time.Millisecond)
			if err := echo(c, "during"); err != nil {
				t.Fatalf("proxied connection during Shutdown: %v", err)
			}
			if tt.deadline {
				cancel()
				if err := <-shut; !errors.Is(err, context.Canceled) {
					t.Errorf("Shutdown = %v, want context.Canceled", err)
				}
				if n, err := c.Read(make([]byte, 1)); err == nil {
					t.Errorf("read %d bytes after the deadline, want the connection closed", n)
				}
				return
			}
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned %v with a connection open", err)
			default:
			}
			c.Close()
			select {
			case err := <-shut:
				if err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Shutdown did not return after the client closed")
			}
		})
	}
}

func TestUpstreamCheck(t *testing.T) {
	ul, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := NewUpstream(ul.Addr().String(), ProxyNone)
	if err := u.Check(); err != nil {
		t.Errorf("Check with the upstream listening: %v", err)
	}
	ul.Close()
	if err := u.Check(); err == nil {
		t.Error("Check with nothing listening = nil, want an error")
	}
}
