// Package serve holds the back-end servers handoffd runs on the
// connections it is given, handed-off or direct: Static (files over HTTP),
// Upstream (splicing to a local server, with an optional PROXY protocol
// header) and TLSListener (TLS termination). It knows nothing of the handoff
// protocol: any net.Listener feeds it.
//
// The connections come from package handoff/agent's Listener.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Timeouts of the HTTP servers on handed-off connections: the built-in
// static server's, and those a Go server behind the agent should use
// (cmd/httpagent does).
const (
	HeaderTimeout = 10 * time.Second  // to read a request head
	IdleTimeout   = 120 * time.Second // between keep-alive requests
)

// upstreamDialTimeout bounds the connection to the local server.
const upstreamDialTimeout = 5 * time.Second

// Server serves connections, handed-off or direct, and drains them on
// Shutdown. Check tells whether what serves them works, for the agent's
// health reports.
type Server interface {
	Serve(l net.Listener) error
	Shutdown(ctx context.Context) error
	Check() error
}

// Static serves files under a root directory over HTTP/1.1 (keep-alive,
// Range, HEAD) with net/http's FileServer, with sane timeouts. Responses
// have no write deadline, so large files to slow clients are not cut off.
// Files go out with sendfile(2) when the connections are *net.TCPConn or
// wrap one (as agent.Listener's do).
type Static struct {
	root string
	srv  http.Server
}

// NewStatic returns a Static server of root, or an error if root is not a
// directory.
func NewStatic(root string) (*Static, error) {
	s := &Static{root: root}
	if err := s.Check(); err != nil {
		return nil, err
	}
	s.srv = http.Server{
		Handler:           http.FileServer(http.Dir(root)),
		ReadHeaderTimeout: HeaderTimeout,
		IdleTimeout:       IdleTimeout,
	}
	return s, nil
}

// Serve serves l until it is closed or Shutdown is called, and returns the
// error that stopped it (http.ErrServerClosed after Shutdown).
func (s *Static) Serve(l net.Listener) error { return s.srv.Serve(l) }

// Shutdown closes the listeners and the idle connections, lets the others
// finish their current response (keep-alive ends there), and waits for them
// or for ctx, as http.Server.Shutdown does; at ctx's end the connections
// still open are closed.
func (s *Static) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if ctx.Err() != nil {
		s.srv.Close()
	}
	return err
}

// Check reports an error when the root is not a readable directory.
func (s *Static) Check() error {
	fi, err := os.Stat(s.root)
	if err != nil {
		return fmt.Errorf("static root: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("static root %s is not a directory", s.root)
	}
	return nil
}

// Upstream proxies each connection to a local server at an address
// (host:port): bytes both ways with io.Copy between *net.TCPConn (Go uses
// splice(2) for TCP-to-TCP copies on Linux), half-closes passed on
// (CloseWrite), both closed at the end. A connection whose upstream cannot
// be reached is closed. With a PROXY protocol version, each connection to
// the server starts with a header (AppendProxyHeader) carrying the client
// connection's remote address (the client's) and local one (the VIP's for
// a handed-off connection), before any byte of the client's.
type Upstream struct {
	addr  string
	proxy ProxyVersion

	mu        sync.Mutex
	stopping  bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{} // client ends of the proxied connections
	wg        sync.WaitGroup
}

// NewUpstream returns an Upstream proxying to addr, sending a PROXY
// protocol header of version proxy first (ProxyNone: none).
func NewUpstream(addr string, proxy ProxyVersion) *Upstream {
	return &Upstream{addr: addr, proxy: proxy, listeners: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{}}
}

// Serve proxies l's connections until l is closed or Shutdown is called,
// and returns the error that stopped l's Accept (net.ErrClosed after
// Shutdown). Proxied connections carry on.
func (u *Upstream) Serve(l net.Listener) error {
	if !u.addListener(l) {
		return net.ErrClosed
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		if !u.addConn(c) {
			c.Close()
			return net.ErrClosed
		}
		go func() {
			defer u.removeConn(c)
			proxy(c, u.addr, u.proxy)
		}()
	}
}

// Shutdown closes the listeners and waits for the proxied connections to
// end by themselves (the bytes are opaque: there is no request boundary to
// stop at), or for ctx; at ctx's end it closes those still open.
func (u *Upstream) Shutdown(ctx context.Context) error {
	u.mu.Lock()
	u.stopping = true
	for l := range u.listeners {
		l.Close()
	}
	u.mu.Unlock()
	done := make(chan struct{})
	go func() {
		u.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	u.mu.Lock()
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	<-done
	return ctx.Err()
}

// Check connects to the upstream and reports an error if it cannot.
func (u *Upstream) Check() error {
	c, err := net.DialTimeout("tcp", u.addr, upstreamDialTimeout)
	if err != nil {
		return err
	}
	return c.Close()
}

func (u *Upstream) addListener(l net.Listener) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopping {
		return false
	}
	u.listeners[l] = struct{}{}
	return true
}

// addConn counts c in, unless Shutdown has begun (so that no wg.Add
// happens once Shutdown may be waiting).
func (u *Upstream) addConn(c net.Conn) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopping {
		return false
	}
	u.conns[c] = struct{}{}
	u.wg.Add(1)
	return true
}

func (u *Upstream) removeConn(c net.Conn) {
	u.mu.Lock()
	delete(u.conns, c)
	u.mu.Unlock()
	u.wg.Done()
}

// proxy copies between client and a new connection to upstream, which
// starts with a PROXY header of version header, until both directions are
// done, then closes both.
func proxy(client net.Conn, upstream string, header ProxyVersion) {
	defer client.Close()
	up, err := net.DialTimeout("tcp", upstream, upstreamDialTimeout)
	if err != nil {
		return
	}
	defer up.Close()
	if header != ProxyNone {
		// The buffer escapes (Write is an interface call): the one
		// allocation the header costs.
		var buf [MaxProxyHeaderLen]byte
		h := AppendProxyHeader(buf[:0], header, tcpAddrPort(client.RemoteAddr()), tcpAddrPort(client.LocalAddr()))
		if _, err := up.Write(h); err != nil {
			return
		}
	}
	// Copy on the underlying connection so both ends are *net.TCPConn and
	// io.Copy splices; client.Close above keeps the listener's count right.
	inner := netConn(client)
	abort := func() { client.Close(); up.Close() }
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(up, inner, abort)
	}()
	pipe(inner, up, abort)
	<-done
}

// pipe copies src to dst, then passes the end of src on as a half-close of
// dst. If the copy fails it calls abort, which ends the other direction too.
func pipe(dst, src net.Conn, abort func()) {
	_, err := io.Copy(dst, src)
	if err == nil {
		err = closeWrite(dst)
	}
	if err != nil {
		abort()
	}
}

// netConn returns the connection c wraps, if it says (as crypto/tls.Conn and
// the agent's accepted connections do with a NetConn method), else c.
func netConn(c net.Conn) net.Conn {
	if w, ok := c.(interface{ NetConn() net.Conn }); ok {
		return w.NetConn()
	}
	return c
}

var errNoHalfClose = errors.New("connection cannot half-close")

// closeWrite shuts down the writing side of c.
func closeWrite(c net.Conn) error {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return errNoHalfClose
	}
	return cw.CloseWrite()
}
