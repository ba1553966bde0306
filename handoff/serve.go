package handoff

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// Timeouts of the built-in servers.
const (
	staticHeaderTimeout = 10 * time.Second  // to read a request head
	staticIdleTimeout   = 120 * time.Second // between keep-alive requests
	upstreamDialTimeout = 5 * time.Second   // to connect to the local server
)

// ServeStatic serves files under root over HTTP/1.1 (keep-alive, Range, HEAD)
// on l with net/http's FileServer, with sane timeouts. Responses have no write
// deadline, so large files to slow clients are not cut off. Files go out with
// sendfile(2) when l's connections are *net.TCPConn or wrap one (as
// Listener's do). It returns the error that stopped l's Accept, or an error
// at once if root is not a directory.
func ServeStatic(l net.Listener, root string) error {
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("static root: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("static root %s is not a directory", root)
	}
	srv := &http.Server{
		Handler:           http.FileServer(http.Dir(root)),
		ReadHeaderTimeout: staticHeaderTimeout,
		IdleTimeout:       staticIdleTimeout,
	}
	return srv.Serve(l)
}

// ServeUpstream proxies each connection of l to a local server at upstream
// (host:port): bytes both ways with io.Copy between *net.TCPConn (Go uses
// splice(2) for TCP-to-TCP copies on Linux), half-closes passed on
// (CloseWrite), both closed at the end. A connection whose upstream cannot be
// reached is closed. It returns the error that stopped l's Accept; proxied
// connections carry on.
func ServeUpstream(l net.Listener, upstream string) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go proxy(c, upstream)
	}
}

// proxy copies between client and a new connection to upstream until both
// directions are done, then closes both.
func proxy(client net.Conn, upstream string) {
	defer client.Close()
	up, err := net.DialTimeout("tcp", upstream, upstreamDialTimeout)
	if err != nil {
		return
	}
	defer up.Close()
	// Copy on the underlying connection so both ends are *net.TCPConn and
	// io.Copy splices; client.Close above keeps the listener's count right.
	inner := client
	if w, ok := client.(interface{ NetConn() net.Conn }); ok {
		inner = w.NetConn()
	}
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

var errNoHalfClose = errors.New("connection cannot half-close")

// closeWrite shuts down the writing side of c.
func closeWrite(c net.Conn) error {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return errNoHalfClose
	}
	return cw.CloseWrite()
}
