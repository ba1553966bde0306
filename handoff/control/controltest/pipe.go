// Package controltest provides an in-memory control.Socket (Pipe) and the
// agent's end of a control connection run by a test (Agent), so that the
// switch's control connections, and the shard loop that drives them, are
// tested without a kernel socket or an agent process.
package controltest

import (
	"sync"

	"webswitch/internal/sys"
)

// Pipe returns the two ends of an in-memory byte stream. Each end is a
// control.Socket with no descriptor (Fd is -1): reads never block, and
// return sys.ErrClosed once the other end is closed and drained. Writes
// take everything, unless the writer's end was closed. The ends may be
// used from different goroutines.
func Pipe() (*End, *End) {
	p := &pipe{}
	return &End{p: p, side: 0}, &End{p: p, side: 1}
}

type pipe struct {
	mu     sync.Mutex
	buf    [2][]byte // buf[i][off[i]:]: bytes written by side i, not yet read
	off    [2]int
	closed [2]bool
}

// End is one end of a Pipe.
type End struct {
	p    *pipe
	side int
	// ConnectErr, when set before the first Connected call, is what the
	// connection attempt ends with (a refused connect, say).
	ConnectErr error
}

// Fd returns -1: an End has no descriptor.
func (e *End) Fd() int { return -1 }

// Read takes what the other end wrote.
func (e *End) Read(b []byte) (int, error) {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	peer := 1 - e.side
	if e.p.closed[e.side] {
		return 0, sys.ErrClosed
	}
	in := e.p.buf[peer][e.p.off[peer]:]
	if len(in) == 0 {
		if e.p.closed[peer] {
			return 0, sys.ErrClosed
		}
		return 0, nil
	}
	n := copy(b, in)
	e.p.off[peer] += n
	if e.p.off[peer] == len(e.p.buf[peer]) {
		// Drained: the buffer is reused, so that a warm pipe allocates
		// nothing.
		e.p.buf[peer], e.p.off[peer] = e.p.buf[peer][:0], 0
	}
	return n, nil
}

// Write appends b for the other end.
func (e *End) Write(b []byte) (int, error) {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	if e.p.closed[e.side] || e.p.closed[1-e.side] {
		return 0, sys.ErrClosed
	}
	e.p.buf[e.side] = append(e.p.buf[e.side], b...)
	return len(b), nil
}

// Connected returns ConnectErr.
func (e *End) Connected() error { return e.ConnectErr }

// Close closes this end: the other end reads what is left, then
// sys.ErrClosed.
func (e *End) Close() error {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	e.p.closed[e.side] = true
	return nil
}

// PeerClosed reports whether the other end was closed.
func (e *End) PeerClosed() bool {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	return e.p.closed[1-e.side]
}
