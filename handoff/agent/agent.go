// Package agent is the back-end's end of the handoff protocol: Agent serves
// the switches' control connections, re-creates each handed-off client
// connection in this host's kernel with TCP_REPAIR (Recreate), and delivers
// it to a Listener, a net.Listener any Go server can serve.
//
// The wire protocol is package handoff, the switch's end package
// handoff/control; the servers handoffd runs on the delivered connections
// are package serve.
package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"webswitch/handoff"
)

// Agent defaults.
const (
	DefaultLoadInterval = time.Second
	DefaultTimeout      = 5 * time.Second
)

// errAgentConfig is returned by Serve when a required field is missing.
var errAgentConfig = errors.New("agent: Agent needs Secret, Recreate and Deliver")

// Agent serves control connections from switches: handshake, then for each
// HANDOFF it calls Recreate and answers OK or ERR(code, reason) with the same
// id, then hands the new connection to Deliver. For each LOOKUP (flow
// recovery) it calls Lookup and answers OWNERS, or ERR when it cannot say.
// It answers PING with PONG and sends LOAD (its Health and Active count)
// every LoadInterval, once right after the handshake, and at once when
// Health changes. Shutdown sends GOAWAY and lets the switches close their
// connections.
//
// A re-created connection whose OK cannot be written (the switch died or
// lost its control connection meanwhile) is delivered all the same: its
// socket exists and holds the client's request, closing it would reset the
// client, and a switch that gets the client's next segment finds the flow
// by LOOKUP. The control connection then ends.
//
// Messages from one connection are handled in order and each reply is written
// as soon as it is ready. Recreate is only called for a message whose MAC
// verified, so a rejected message never creates a socket. A connection that
// fails (wrong secret, bad MAC, bad framing, handshake timeout) is closed and
// counted in Stats; the others keep working.
type Agent struct {
	Secret []byte // shared with the switches; must not be empty

	// Recreate re-creates the client connection (TCP_REPAIR in production, a
	// fake in tests). request aliases the receive buffer and is only valid
	// during the call. It is called from the connection's goroutine, so a
	// slow Recreate holds up later messages of that switch.
	Recreate func(st *handoff.ConnState, request []byte) (net.Conn, error)
	// Deliver gives a re-created connection to the server, after its OK was
	// written (or failed to be). It must not block for long, for the same
	// reason.
	Deliver func(c net.Conn)
	// Lookup appends to owners the owner of each of ids (at most
	// handoff.MaxLookup), in order: whether this host holds the connection
	// and in which state (a Diag in production, a fake in tests). It is
	// called from the connection's goroutine, like Recreate. When it fails,
	// or is nil, LOOKUPs are answered ERR(handoff.ErrCodeBusy), so that no
	// switch concludes that this host holds none of the connections.
	Lookup func(ids []handoff.FlowID, owners []handoff.Owner) ([]handoff.Owner, error)
	// Active optionally reports the number of active connections for LOAD.
	Active func() uint32

	LoadInterval time.Duration // between LOAD reports; 0 means DefaultLoadInterval
	Timeout      time.Duration // handshake deadline and per-write deadline; 0 means DefaultTimeout
	Log          zerolog.Logger

	// Stats counts handoffs and rejected connections; read with atomic loads.
	Stats Stats

	draining   atomic.Bool
	serverDown atomic.Bool

	mu        sync.Mutex
	closed    bool
	goingAway bool          // Shutdown: GOAWAY sent or to be sent on every connection
	changed   chan struct{} // closed (and replaced) when the reported health changes
	listeners map[net.Listener]struct{}
	conns     map[*agentConn]struct{}
	wg        sync.WaitGroup
}

// Stats are the Agent's counters.
type Stats struct {
	Sessions         atomic.Uint64 // control connections that completed the handshake
	Handoffs         atomic.Uint64 // HANDOFFs re-created, answered OK and passed to Deliver
	DeliveredUnacked atomic.Uint64 // HANDOFFs re-created and passed to Deliver, their OK not written
	Exists           atomic.Uint64 // HANDOFFs of a connection this host holds already: ERR(handoff.ErrCodeExists)
	RecreateFailed   atomic.Uint64 // HANDOFFs answered ERR(handoff.ErrCodeRecreate)
	Malformed        atomic.Uint64 // HANDOFFs and LOOKUPs answered ERR(handoff.ErrCodeMalformed): authentic but undecodable

	Lookups      atomic.Uint64 // LOOKUPs received
	LookupConns  atomic.Uint64 // connections asked about, in the LOOKUPs that decoded
	LookupOwned  atomic.Uint64 // of those, the ones this host holds
	LookupFailed atomic.Uint64 // LOOKUPs answered ERR(handoff.ErrCodeBusy): no Lookup, or it failed

	// Connections closed because of a protocol error, by reason.
	RejectAuth      atomic.Uint64 // handoff.ErrAuth: the switch proved a different secret
	RejectMAC       atomic.Uint64 // handoff.ErrMAC
	RejectVersion   atomic.Uint64 // handoff.ErrVersion
	RejectType      atomic.Uint64 // handoff.ErrType
	RejectState     atomic.Uint64 // handoff.ErrState
	RejectTooLarge  atomic.Uint64 // handoff.ErrTooLarge
	RejectMalformed atomic.Uint64 // handoff.ErrMalformed (a handshake body too long)
	RejectTruncated atomic.Uint64 // handoff.ErrTruncated: a short handshake body, or EOF inside a message
	RejectTimeout   atomic.Uint64 // no complete handshake, or a write not done, within Timeout
}

// Snapshot returns the counters by name, for logs: "sessions", "handoffs",
// "recreate_failed", "malformed", "delivered_unacked", "lookups",
// "lookup_conns", "lookup_owned", "lookup_failed" and "reject_<reason>" for
// every reason.
func (s *Stats) Snapshot() map[string]uint64 {
	return map[string]uint64{
		"sessions":          s.Sessions.Load(),
		"handoffs":          s.Handoffs.Load(),
		"recreate_failed":   s.RecreateFailed.Load(),
		"malformed":         s.Malformed.Load(),
		"delivered_unacked": s.DeliveredUnacked.Load(),
		"exists":            s.Exists.Load(),
		"lookups":           s.Lookups.Load(),
		"lookup_conns":      s.LookupConns.Load(),
		"lookup_owned":      s.LookupOwned.Load(),
		"lookup_failed":     s.LookupFailed.Load(),
		"reject_auth":       s.RejectAuth.Load(),
		"reject_mac":        s.RejectMAC.Load(),
		"reject_version":    s.RejectVersion.Load(),
		"reject_type":       s.RejectType.Load(),
		"reject_state":      s.RejectState.Load(),
		"reject_too_large":  s.RejectTooLarge.Load(),
		"reject_malformed":  s.RejectMalformed.Load(),
		"reject_truncated":  s.RejectTruncated.Load(),
		"reject_timeout":    s.RejectTimeout.Load(),
	}
}

// SetDraining sets the draining flag, telling the switches to send no new
// connections (an operator's drain). HANDOFFs still in flight are served.
// Every switch gets a LOAD report at once.
func (a *Agent) SetDraining(on bool) {
	if a.draining.Swap(on) != on {
		a.healthChanged()
	}
}

// SetServerUp records the result of the server's health check: a server
// that is down makes LOAD report HealthDown, and the switches send no new
// connections until it is up again. Every switch gets a LOAD report at once
// when the state changes.
func (a *Agent) SetServerUp(up bool) {
	if a.serverDown.Swap(!up) != !up {
		a.healthChanged()
	}
}

// Health returns what LOAD reports: draining before down before up.
func (a *Agent) Health() handoff.Health {
	switch {
	case a.draining.Load():
		return handoff.HealthDraining
	case a.serverDown.Load():
		return handoff.HealthDown
	}
	return handoff.HealthUp
}

func (a *Agent) healthChanged() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
}

// healthChange returns a channel closed at the next change of Health.
func (a *Agent) healthChange() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.changed == nil {
		a.changed = make(chan struct{})
	}
	return a.changed
}

// Serve accepts control connections on l and serves each in its own
// goroutine. It returns nil once Close or Shutdown is called, or the error that stopped
// l (wrapping net.ErrClosed if l was closed by its owner). Temporary accept
// errors (such as running out of file descriptors) are retried with backoff.
func (a *Agent) Serve(l net.Listener) error {
	if len(a.Secret) == 0 || a.Recreate == nil || a.Deliver == nil {
		return errAgentConfig
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	if a.listeners == nil {
		a.listeners = make(map[net.Listener]struct{})
	}
	a.listeners[l] = struct{}{}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.listeners, l)
		a.mu.Unlock()
	}()

	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if a.isClosed() || a.isGoingAway() {
				return nil
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				a.Log.Warn().Err(err).Dur("retry", delay).Msg("handoff agent: accept")
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		cc := a.newConn(c)
		if !a.addConn(cc) {
			c.Close()
			return nil
		}
		go a.serveConn(cc)
	}
}

// Shutdown stops the agent gracefully, for a restart or an upgrade: it
// stops accepting control connections, sends GOAWAY on every open one and
// waits until the switches have closed them (each switch does once the
// HANDOFFs it already sent are answered: they are still served), or until
// ctx ends; then it closes what is left, like Close. Connections already
// handed to Deliver are not touched.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	a.goingAway = true
	err := a.closeListenersLocked()
	conns := make([]*agentConn, 0, len(a.conns))
	for cc := range a.conns {
		conns = append(conns, cc)
	}
	a.mu.Unlock()
	for _, cc := range conns {
		cc.goAway()
	}
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	if cerr := a.Close(); err == nil {
		err = cerr
	}
	return err
}

// closeListenersLocked closes every listener Serve was given and returns
// the first error, a listener already closed aside. a.mu is held.
func (a *Agent) closeListenersLocked() error {
	var err error
	for l := range a.listeners {
		if cerr := l.Close(); cerr != nil && err == nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	return err
}

func (a *Agent) isGoingAway() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.goingAway
}

// Close stops every Serve call, closes the open control connections and
// waits for their goroutines to finish. It returns the first error from
// closing a listener.
func (a *Agent) Close() error {
	a.mu.Lock()
	a.closed = true
	err := a.closeListenersLocked()
	for cc := range a.conns {
		cc.c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
	return err
}

func (a *Agent) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// addConn registers cc for Close and its goroutine for the wait group; it
// reports false once the agent is closed.
func (a *Agent) addConn(cc *agentConn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	if a.conns == nil {
		a.conns = make(map[*agentConn]struct{})
	}
	a.conns[cc] = struct{}{}
	a.wg.Add(1)
	return true
}

func (a *Agent) removeConn(cc *agentConn) {
	a.mu.Lock()
	delete(a.conns, cc)
	a.mu.Unlock()
	a.wg.Done()
}

// agentConn is one control connection. mu serialises the Session and the
// writes between the reading goroutine and the LOAD reporter.
type agentConn struct {
	a       *Agent
	c       net.Conn
	log     zerolog.Logger
	timeout time.Duration

	mu     sync.Mutex
	sess   *handoff.Session
	load   [handoff.LoadLen]byte
	goaway bool // GOAWAY sent

	// LOOKUP buffers, used by the reading goroutine only.
	ids    []handoff.FlowID
	owners []handoff.Owner
	body   []byte
}

func (a *Agent) newConn(c net.Conn) *agentConn {
	cc := &agentConn{
		a:       a,
		c:       c,
		log:     a.Log.With().Stringer("switch", c.RemoteAddr()).Logger(),
		timeout: a.Timeout,
		sess:    handoff.NewAgentSession(a.Secret, nil),
	}
	if cc.timeout <= 0 {
		cc.timeout = DefaultTimeout
	}
	return cc
}

// goAway sends GOAWAY on an authenticated connection and closes one that is
// not: that switch has nothing in flight here. It is called once the agent
// is going away, by Shutdown and by the connection itself when its
// handshake completes after that.
func (cc *agentConn) goAway() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.goaway {
		return
	}
	if !cc.sess.Ready() {
		cc.c.Close()
		return
	}
	cc.goaway = true
	if err := cc.sess.Send(handoff.MsgGoAway, 0, nil); err == nil {
		err = cc.flushLocked()
	}
	// The switch closes the connection once its HANDOFFs are answered; a
	// switch that never does is cut off after the timeout.
	cc.c.SetReadDeadline(time.Now().Add(cc.timeout))
}

// serveConn runs one control connection to its end and counts why it ended.
func (a *Agent) serveConn(cc *agentConn) {
	defer a.removeConn(cc)
	defer cc.c.Close()
	tuneControl(cc.c)
	err := cc.run()
	if err == nil || a.isClosed() {
		cc.log.Debug().Err(err).Msg("handoff agent: control connection closed")
		return
	}
	if reason := a.countReject(err); reason != "" {
		cc.log.Warn().Err(err).Str("reason", reason).Msg("handoff agent: control connection rejected")
		return
	}
	cc.log.Info().Err(err).Msg("handoff agent: control connection lost")
}

// countReject counts err as a rejection and returns its reason, or "" when
// err is not a protocol error (an I/O error, say).
func (a *Agent) countReject(err error) string {
	s := &a.Stats
	for _, r := range [...]struct {
		err    error
		n      *atomic.Uint64
		reason string
	}{
		{handoff.ErrAuth, &s.RejectAuth, "auth"},
		{handoff.ErrMAC, &s.RejectMAC, "mac"},
		{handoff.ErrVersion, &s.RejectVersion, "version"},
		{handoff.ErrType, &s.RejectType, "type"},
		{handoff.ErrState, &s.RejectState, "state"},
		{handoff.ErrTooLarge, &s.RejectTooLarge, "too large"},
		{handoff.ErrMalformed, &s.RejectMalformed, "malformed"},
		{handoff.ErrTruncated, &s.RejectTruncated, "truncated"},
		{os.ErrDeadlineExceeded, &s.RejectTimeout, "timeout"},
	} {
		if errors.Is(err, r.err) {
			r.n.Add(1)
			return r.reason
		}
	}
	return ""
}

// run reads and handles messages until the connection ends. It returns nil
// when the switch closes the connection between two messages.
func (cc *agentConn) run() error {
	// The handshake must finish within the timeout.
	if err := cc.c.SetDeadline(time.Now().Add(cc.timeout)); err != nil {
		return err
	}
	cc.mu.Lock()
	err := cc.flushLocked() // HELLO
	cc.mu.Unlock()
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	var loader sync.WaitGroup
	defer func() {
		close(stop)
		loader.Wait()
	}()

	buf := make([]byte, 4<<10)
	var r, w int // buf[r:w] is received and not yet consumed
	for {
		switch {
		case r == w:
			r, w = 0, 0
		case w == len(buf) && r > 0:
			w = copy(buf, buf[r:w])
			r = 0
		case w == len(buf):
			// A frame larger than buf: Receive has checked its length
			// against MaxBodyToAgent, so growing up to MaxFrameToAgent
			// is bounded.
			nb := make([]byte, min(2*len(buf), handoff.MaxFrameToAgent))
			copy(nb, buf[:w])
			buf = nb
		}
		n, rerr := cc.c.Read(buf[w:])
		w += n
		for r < w {
			cc.mu.Lock()
			wasReady := cc.sess.Ready()
			n, m, ok, err := cc.sess.Receive(buf[r:w])
			if err == nil && !ok {
				err = cc.flushLocked() // handshake reply
			}
			authenticated := !wasReady && cc.sess.Ready()
			cc.mu.Unlock()
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			r += n
			if ok {
				if err := cc.handle(m); err != nil {
					return err
				}
			} else if authenticated {
				if err := cc.c.SetReadDeadline(time.Time{}); err != nil {
					return err
				}
				cc.a.Stats.Sessions.Add(1)
				cc.log.Info().Msg("handoff agent: switch authenticated")
				loader.Add(1)
				go cc.reportLoad(stop, &loader)
				if cc.a.isGoingAway() {
					cc.goAway()
				}
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				if r < w {
					return handoff.ErrTruncated
				}
				return nil
			}
			return rerr
		}
	}
}

// handle answers one application message.
func (cc *agentConn) handle(m handoff.Msg) error {
	switch m.Type {
	case handoff.MsgHandoff:
		return cc.recreate(m)
	case handoff.MsgLookup:
		return cc.lookup(m)
	case handoff.MsgPing:
		return cc.send(handoff.MsgPong, m.ID, nil)
	}
	return nil // PONG: the switch answered a PING; nothing to do
}

func (cc *agentConn) recreate(m handoff.Msg) error {
	a := cc.a
	var st handoff.ConnState
	req, err := handoff.DecodeHandoffBody(m.Body, &st)
	if err != nil {
		a.Stats.Malformed.Add(1)
		return cc.sendErr(m.ID, handoff.ErrCodeMalformed, err.Error())
	}
	conn, err := a.Recreate(&st, req)
	if errors.Is(err, ErrExists) {
		a.Stats.Exists.Add(1)
		cc.log.Info().Stringer("client", st.Client).Msg("handoff agent: connection handed off again; its socket is here already")
		return cc.sendErr(m.ID, handoff.ErrCodeExists, err.Error())
	}
	if err != nil {
		a.Stats.RecreateFailed.Add(1)
		cc.log.Debug().Err(err).Stringer("client", st.Client).Msg("handoff agent: re-creation failed")
		return cc.sendErr(m.ID, handoff.ErrCodeRecreate, err.Error())
	}
	err = cc.send(handoff.MsgOK, m.ID, nil)
	if err != nil {
		a.Stats.DeliveredUnacked.Add(1)
		cc.log.Info().Err(err).Stringer("client", st.Client).Msg("handoff agent: OK not written; connection delivered all the same")
	} else {
		a.Stats.Handoffs.Add(1)
	}
	a.Deliver(conn)
	return err
}

// errNoLookup answers a LOOKUP when the Agent has no Lookup.
var errNoLookup = errors.New("agent: this agent cannot look up its connections")

// lookup answers a LOOKUP with OWNERS, one entry per connection asked, in
// order. It answers ERR instead, so the switch takes it as no answer from
// this agent: ERR(handoff.ErrCodeMalformed) for a body that does not
// decode, as for a HANDOFF (the switch proved the secret: a bug, not an
// attack, and its other messages are still served), and
// ERR(handoff.ErrCodeBusy) when the agent cannot look.
func (cc *agentConn) lookup(m handoff.Msg) error {
	a := cc.a
	a.Stats.Lookups.Add(1)
	ids, err := handoff.DecodeLookupBody(m.Body, cc.ids[:0])
	if err != nil {
		a.Stats.Malformed.Add(1)
		return cc.sendErr(m.ID, handoff.ErrCodeMalformed, err.Error())
	}
	cc.ids = ids
	a.Stats.LookupConns.Add(uint64(len(ids)))
	err = errNoLookup
	if a.Lookup != nil {
		cc.owners, err = a.Lookup(ids, cc.owners[:0])
	}
	if err != nil {
		a.Stats.LookupFailed.Add(1)
		cc.log.Debug().Err(err).Msg("handoff agent: lookup failed")
		return cc.sendErr(m.ID, handoff.ErrCodeBusy, err.Error())
	}
	var owned uint64
	cc.body = cc.body[:0]
	for _, o := range cc.owners {
		if o.Owns() {
			owned++
		}
		cc.body = handoff.AppendOwner(cc.body, o)
	}
	a.Stats.LookupOwned.Add(owned)
	return cc.send(handoff.MsgOwners, m.ID, cc.body)
}

// send queues one message and writes it.
func (cc *agentConn) send(t handoff.MsgType, id uint64, body []byte) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if err := cc.sess.Send(t, id, body); err != nil {
		return err
	}
	return cc.flushLocked()
}

func (cc *agentConn) sendErr(id uint64, code uint16, reason string) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if err := cc.sess.SendErr(id, code, reason); err != nil {
		return err
	}
	return cc.flushLocked()
}

// flushLocked writes everything pending, each write bounded by the timeout.
func (cc *agentConn) flushLocked() error {
	for p := cc.sess.Pending(); len(p) > 0; p = cc.sess.Pending() {
		if err := cc.c.SetWriteDeadline(time.Now().Add(cc.timeout)); err != nil {
			return err
		}
		n, err := cc.c.Write(p)
		cc.sess.Written(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// reportLoad sends LOAD now and every LoadInterval until stop is closed or
// the session fails. A failed write closes the connection, which ends the
// reading goroutine too.
func (cc *agentConn) reportLoad(stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	a := cc.a
	interval := a.LoadInterval
	if interval <= 0 {
		interval = DefaultLoadInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var active uint32
		if a.Active != nil {
			active = a.Active()
		}
		changed := a.healthChange()
		cc.mu.Lock()
		err := cc.sess.Send(handoff.MsgLoad, 0, handoff.AppendLoadBody(cc.load[:0], active, a.Health()))
		if err != nil {
			// The session failed: the reading goroutine has the error
			// and is ending the connection.
			cc.mu.Unlock()
			return
		}
		err = cc.flushLocked()
		cc.mu.Unlock()
		if err != nil {
			cc.c.Close() // wakes the reading goroutine
			return
		}
		select {
		case <-stop:
			return
		case <-t.C:
		case <-changed:
		}
	}
}
