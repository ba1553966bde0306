package agent

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Listener is a net.Listener whose connections are handed-off client
// connections, so any Go server can Serve(l). The agent puts connections in
// with Deliver; Accept takes them out in the same order. The queue is not
// bounded: the server is expected to accept as fast as it can.
type Listener struct {
	addr   net.Addr
	active atomic.Uint32

	mu     sync.Mutex
	cond   sync.Cond // signalled on Deliver and Close; uses mu
	queue  []net.Conn
	closed bool
}

// NewListener returns an open Listener whose Addr is addr. Its connections
// keep their own LocalAddr, whatever addr says.
func NewListener(addr net.Addr) *Listener {
	l := &Listener{addr: addr}
	l.cond.L = &l.mu
	return l
}

// New returns what a Go program needs to serve handed-off connections
// itself: an Agent (to Serve on a control listener) that re-creates each
// connection in this host's kernel with Recreate, delivers it to the
// returned Listener (to Serve any server on), and answers the switches'
// LOOKUPs with a Diag (its netlink socket, opened at the first LOOKUP,
// lasts as long as the program). The switch hands off
// connections to every port it serves on vip, so the Listener's Addr is vip
// with port 0, and each connection's LocalAddr is the VIP and port its
// client connected to (the re-created socket's own). A connection handed
// off after the Listener is closed is closed, with a debug line in log. Set
// the Agent's other fields before Serve.
func New(secret []byte, vip netip.Addr, log zerolog.Logger) (*Agent, *Listener) {
	l := NewListener(net.TCPAddrFromAddrPort(netip.AddrPortFrom(vip, 0)))
	// One Diag for all the control connections, its batches taking turns:
	// LOOKUPs come only from a switch that lost its flows, and a batch
	// takes about 200 µs, so switches seldom wait for each other, and the
	// agent keeps one netlink socket rather than one per switch.
	diag := NewDiag()
	a := &Agent{
		Secret:   secret,
		Recreate: Recreate,
		Deliver: func(c net.Conn) {
			if !l.Deliver(c) {
				log.Debug().Stringer("client", c.RemoteAddr()).Msg("handoff after shutdown: connection closed")
			}
		},
		Lookup: diag.Lookup,
		Active: l.Active,
		Log:    log,
	}
	return a, l
}

// Deliver queues c for Accept. It returns false, and closes c, if the
// listener is closed.
func (l *Listener) Deliver(c net.Conn) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return false
	}
	l.queue = append(l.queue, c)
	l.mu.Unlock()
	l.cond.Signal()
	return true
}

// Accept waits for and returns the next delivered connection. It returns
// net.ErrClosed after Close. The connection's Close also updates Active.
func (l *Listener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.queue) == 0 && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		return nil, net.ErrClosed
	}
	c := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	l.active.Add(1)
	return &acceptedConn{Conn: c, l: l}, nil
}

// Close stops the listener: blocked and later Accept calls return
// net.ErrClosed, connections delivered but not accepted are closed, and later
// Deliver calls close their connection. Accepted connections stay open.
// Closing twice returns net.ErrClosed.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return net.ErrClosed
	}
	l.closed = true
	queue := l.queue
	l.queue = nil
	l.mu.Unlock()
	l.cond.Broadcast()
	for _, c := range queue {
		c.Close()
	}
	return nil
}

// Addr returns the address given to NewListener: for New's, the VIP with
// port 0, as the connections come to all the ports the switch serves.
func (l *Listener) Addr() net.Addr { return l.addr }

// Active returns the number of connections accepted and not yet closed.
func (l *Listener) Active() uint32 { return l.active.Load() }

// acceptedConn is an accepted connection: it counts itself out of Active on its first
// Close.
type acceptedConn struct {
	net.Conn
	l      *Listener
	closed atomic.Bool
}

// Close closes the connection; the first call decrements the listener's
// Active count.
func (c *acceptedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.active.Add(^uint32(0))
	}
	return c.Conn.Close()
}

// ReadFrom lets io.Copy and net/http use the underlying connection's
// ReadFrom (sendfile and splice on a *net.TCPConn).
func (c *acceptedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// NetConn returns the underlying connection, as crypto/tls.Conn does.
func (c *acceptedConn) NetConn() net.Conn { return c.Conn }
