package handoff

import (
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
)

// frontListener returns a Listener fed by a loopback TCP listener, standing in
// for the agent's deliveries, and its dialable address. Both close at test
// end; the feeding goroutine is waited for.
func frontListener(t *testing.T) (*Listener, string) {
	t.Helper()
	tl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(tl.Addr())
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
func serveInBackground(t *testing.T, l *Listener, serve func(net.Listener) error) {
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
func waitIdle(t *testing.T, l *Listener) {
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
	serveInBackground(t, l, func(l net.Listener) error { return ServeStatic(l, root) })

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

func TestServeStaticBadRoot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	for _, root := range []string{file, filepath.Join(file, "missing")} {
		l := NewListener(vipAddr)
		if err := ServeStatic(l, root); err == nil || errors.Is(err, net.ErrClosed) {
			t.Errorf("ServeStatic(%s) = %v, want a root error", root, err)
		}
		l.Close()
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
	serveInBackground(t, l, func(l net.Listener) error { return ServeUpstream(l, up.Listener.Addr().String()) })

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
	ul, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				h := sha256.New()
				n, err := io.Copy(h, c)
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%d %x", n, h.Sum(nil))
			}()
		}
	}()
	l, addr := frontListener(t)
	serveInBackground(t, l, func(l net.Listener) error { return ServeUpstream(l, ul.Addr().String()) })

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
	serveInBackground(t, l, func(l net.Listener) error { return ServeUpstream(l, dead) })
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
