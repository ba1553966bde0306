// Package control is the switch's side of the control connections: one
// authenticated stream from each shard to each back-end's agent, carrying
// HANDOFFs out and their answers back (package handoff is the protocol;
// package agent the other end). A Conn is one such connection with its
// framing, its health checks (PING/PONG, the agent's LOAD reports) and its
// reconnection with backoff; a Set is a shard's Conns to all its back-ends,
// including those retired after a GOAWAY.
//
// Nothing here blocks or reads a clock: the shard loop polls the sockets,
// then calls Set.Events and Set.Step with the time, and hears back through
// its Owner. The guarantee: a HANDOFF sent on a connection gets exactly one
// outcome, an answer (Owner.Answered) or the loss of its connection
// (Owner.Lost), unless the connection was retired, in which case the
// shard's own handoff timeout decides.
package control

import (
	"crypto/rand"
	"errors"
	"time"

	"webswitch/handoff"
	"webswitch/internal/mono"
)

// State is where a Conn is in its life. The zero value is invalid.
type State uint8

// States of a Conn.
const (
	StateInvalid    State = iota
	StateIdle             // not connected; a connection is tried at retryAt
	StateConnecting       // non-blocking connect in progress
	StateAuth             // connected; session handshake in progress
	StateReady            // handoffs may be sent
)

var stateNames = [...]string{"invalid", "idle", "connecting", "auth", "ready"}

func (s State) String() string { return stateNames[s] }

var (
	errTimeout     = errors.New("connect or handshake timed out")
	errHealthCheck = errors.New("health checks failed: PINGs not answered")
)

// Config is what every control connection of a switch shares. A reload
// gives the Set a new one.
type Config struct {
	Secret         []byte
	ConnectTimeout time.Duration // connect and handshake
	ReconnectMin   time.Duration // backoff after a failure, doubled up to ReconnectMax
	ReconnectMax   time.Duration
	HealthInterval time.Duration // a PING this often on a ready connection
	HealthTimeout  time.Duration // a PING not answered within it is a failed check
	HealthRise     int           // good checks in a row that bring a back-end up
	HealthFall     int           // failed checks in a row that take it down
	// AnswerTimeout is how long the switch waits for the answer to a
	// HANDOFF (switch.handoff_timeout): a retired connection stays open
	// that long for the answers still due on it.
	AnswerTimeout time.Duration
}

// Conn is one control connection to back-end Backend's agent.
type Conn struct {
	Backend  int
	sock     Socket // nil when idle
	state    State
	sess     *handoff.Session
	rbuf     []byte
	rlen     int
	retryAt  mono.Time
	deadline mono.Time // connect and handshake must be done by then
	backoff  time.Duration
	lastErr  error
	wasReady bool // the back-end has had a ready connection

	// What the agent says: its last LOAD report, and GOAWAY.
	health handoff.Health
	active uint32
	goaway bool // received: the connection is to be retired (Set.sender)
	// retireAt is set on a retired connection (one that got GOAWAY or
	// whose back-end was removed or moved): it is read until then, for
	// the answers to the handoffs sent on it, and closed.
	retireAt mono.Time

	// The switch's own checks: a PING every HealthInterval on a ready
	// connection, the first one as soon as it is ready.
	pingID   uint64
	pingAt   mono.Time // when the outstanding PING was sent; 0: none
	nextPing mono.Time
	good     int  // consecutive answered PINGs
	bad      int  // consecutive unanswered PINGs
	down     bool // HealthFall checks failed, or the connection was lost; HealthRise good ones clear it
}

func newConn(backend int, retryAt mono.Time) *Conn {
	return &Conn{Backend: backend, state: StateIdle, retryAt: retryAt}
}

// State returns where the connection is.
func (c *Conn) State() State { return c.state }

// Down reports whether the switch's checks hold the back-end down.
func (c *Conn) Down() bool { return c.down }

// Usable reports whether new connections may be handed to the back-end on
// c: ready, the switch's checks passing and the agent reporting its server
// up.
func (c *Conn) Usable() bool {
	return c.state == StateReady && !c.down && c.health == handoff.HealthUp
}

// pollEvents returns the events to wait for.
func (c *Conn) pollEvents() int16 {
	switch c.state {
	case StateConnecting:
		return pollOut
	case StateAuth, StateReady:
		if len(c.sess.Pending()) > 0 {
			return pollIn | pollOut
		}
		return pollIn
	}
	return 0
}

// connected starts the session handshake on a connected socket. The read
// buffer holds the largest message an agent sends, not the HANDOFFs the
// switch sends.
func (c *Conn) connected(secret []byte) {
	c.state = StateAuth
	c.sess = handoff.NewSwitchSession(secret, rand.Reader)
	c.rlen = 0
	if c.rbuf == nil {
		c.rbuf = make([]byte, handoff.MaxFrameToSwitch)
	}
}

// flush writes what the session has pending.
func (c *Conn) flush() error {
	for c.state >= StateAuth {
		p := c.sess.Pending()
		if len(p) == 0 {
			return nil
		}
		n, err := c.sock.Write(p)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		c.sess.Written(n)
	}
	return nil
}

// close closes the socket; it does not touch the handoffs waiting on it.
func (c *Conn) close() {
	if c.sock != nil {
		c.sock.Close()
		c.sock = nil
	}
	c.state = StateIdle
}
