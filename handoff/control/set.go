package control

import (
	"net/netip"

	"github.com/rs/zerolog"

	"webswitch/handoff"
	"webswitch/internal/mono"
	"webswitch/internal/sys"
)

const (
	pollIn  = sys.PollIn
	pollOut = sys.PollOut
	pollErr = sys.PollErr
)

// Target is one back-end as the control connections see it: its agent's
// address. Removed marks a back-end a reload took out: it keeps its index
// (spliced flows refer to it) but gets no connection.
type Target struct {
	Name    string
	Agent   netip.AddrPort
	Removed bool
}

// Owner is told what the control connections learn; the shard is one.
type Owner interface {
	// Answered is the agent's answer to HANDOFF id sent to back-end b:
	// OK (the socket exists: made now, or already there, ERR "exists") or
	// ERR (the agent made none).
	Answered(b int, id uint64, ok bool)
	// Lost says that back-end b's ready connection broke: the handoffs
	// sent on it will never be answered.
	Lost(b int)
	// Down says that the switch took back-end b down: its checks failed
	// or its connection was lost.
	Down(b int)
	// Owners is back-end b's answer to LOOKUP id: an OWNERS body (not
	// yet checked against the LOOKUP), or ok=false when the agent
	// answered ERR. The body is only valid during the call.
	Owners(b int, id uint64, body []byte, ok bool)
}

// lookupBit marks the ids of LOOKUPs on the wire, so that an ERR is routed
// to Owners or Answered by its id alone. HANDOFF ids must leave it clear.
const lookupBit = 1 << 63

// Set is one shard's control connections, one per back-end, plus those
// retired after a GOAWAY until their answers are in. It belongs to the
// shard's goroutine.
type Set struct {
	cfg     *Config
	targets []Target
	conns   []*Conn // current, by back-end
	retired []*Conn
	dial    Dialer
	owner   Owner
	log     zerolog.Logger
	now     mono.Time
}

// NewSet returns a Set that connects to every target's agent from its
// first Step.
func NewSet(cfg *Config, targets []Target, dial Dialer, owner Owner, log zerolog.Logger, now mono.Time) *Set {
	s := &Set{dial: dial, owner: owner, log: log, now: now}
	s.Reconfigure(cfg, targets, now)
	return s
}

// Conn returns back-end b's current connection.
func (s *Set) Conn(b int) *Conn { return s.conns[b] }

// Retired returns the connections retired and still open.
func (s *Set) Retired() []*Conn { return s.retired }

// Reconfigure applies a reload: connections for new back-ends, none for
// removed ones, a new one where the agent moved. Back-ends keep their
// index: targets only grows.
func (s *Set) Reconfigure(cfg *Config, targets []Target, now mono.Time) {
	s.now = now
	old := s.targets
	s.cfg, s.targets = cfg, targets
	for b := len(s.conns); b < len(targets); b++ {
		s.conns = append(s.conns, newConn(b, now))
	}
	for b := range old {
		was, is := &old[b], &targets[b]
		switch {
		case is.Removed && !was.Removed:
			s.replace(b, "back-end removed")
			s.conns[b].retryAt = mono.Never
		case !is.Removed && is.Agent != was.Agent:
			s.replace(b, "agent address changed")
		}
	}
}

// replace retires back-end b's connection: it stays open, out of s.conns,
// until every handoff sent on it is answered or timed out, while a new
// connection starts at once (after a GOAWAY, to the agent's successor,
// which took over its listening socket). The back-end's health carries
// over.
func (s *Set) replace(b int, why string) {
	c := s.conns[b]
	if c.sock != nil {
		c.retireAt = s.now.Add(s.cfg.AnswerTimeout)
		s.retired = append(s.retired, c)
	}
	n := newConn(b, s.now)
	n.down, n.good, n.wasReady = c.down, c.good, c.wasReady
	s.conns[b] = n
	s.log.Info().Str("backend", s.targets[b].Name).Msg(why + ": reconnecting")
}

// AppendPollFds appends the descriptors to poll and their events.
func (s *Set) AppendPollFds(fds []sys.PollFd) []sys.PollFd {
	for _, list := range [2][]*Conn{s.conns, s.retired} {
		for _, c := range list {
			if ev := c.pollEvents(); ev != 0 && c.sock.Fd() >= 0 {
				fds = append(fds, sys.PollFd{Fd: int32(c.sock.Fd()), Events: ev})
			}
		}
	}
	return fds
}

// Events handles what poll reported on the descriptors AppendPollFds gave,
// and reads and writes the in-memory sockets, which have none.
func (s *Set) Events(fds []sys.PollFd, now mono.Time) {
	s.now = now
	for _, pfd := range fds {
		if c := s.connOf(pfd.Fd); c != nil && pfd.Revents != 0 {
			s.events(c, pfd.Revents)
		}
	}
	for _, list := range [2][]*Conn{s.conns, s.retired} {
		for _, c := range list {
			if ev := c.pollEvents(); ev != 0 && c.sock.Fd() < 0 {
				s.events(c, ev)
			}
		}
	}
}

// connOf returns the connection, current or retired, on fd, or nil if it
// was closed earlier in the round (a failed write, say). Sockets are only
// opened by Step, after the events, so fd is not reused yet.
func (s *Set) connOf(fd int32) *Conn {
	for _, list := range [2][]*Conn{s.conns, s.retired} {
		for _, c := range list {
			if c.sock != nil && c.sock.Fd() == int(fd) {
				return c
			}
		}
	}
	return nil
}

func (s *Set) events(c *Conn, revents int16) {
	if c.state == StateConnecting {
		if revents&(pollOut|pollErr) == 0 {
			return
		}
		if err := c.sock.Connected(); err != nil {
			s.fail(c, err)
			return
		}
		c.connected(s.cfg.Secret)
	}
	if revents&(pollIn|pollErr) != 0 {
		if err := s.read(c); err != nil {
			s.fail(c, err)
			return
		}
	}
	s.flush(c)
	if c.goaway && c.retireAt == 0 {
		s.replace(c.Backend, "agent going away")
	}
}

// read takes what c's agent sent and handles each message.
func (s *Set) read(c *Conn) error {
	for {
		n, err := c.sock.Read(c.rbuf[c.rlen:])
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		c.rlen += n
		off := 0
		for {
			used, m, ok, err := c.sess.Receive(c.rbuf[off:c.rlen])
			if err != nil {
				return err
			}
			if used == 0 {
				break
			}
			off += used
			if c.state == StateAuth && c.sess.Ready() {
				s.ready(c)
			}
			if ok {
				s.message(c, &m)
			}
		}
		c.rlen = copy(c.rbuf, c.rbuf[off:c.rlen])
	}
}

func (s *Set) ready(c *Conn) {
	c.state = StateReady
	c.wasReady = true
	c.backoff = 0
	c.health, c.goaway, c.pingAt, c.nextPing = handoff.HealthUp, false, 0, s.now
	s.log.Info().Str("backend", s.targets[c.Backend].Name).Msg("control connection ready")
}

func (s *Set) message(c *Conn, m *handoff.Msg) {
	switch m.Type {
	case handoff.MsgOK:
		s.owner.Answered(c.Backend, m.ID, true)
	case handoff.MsgErr:
		code, _, _ := handoff.DecodeErrBody(m.Body)
		switch {
		case m.ID&lookupBit != 0:
			s.owner.Owners(c.Backend, m.ID&^lookupBit, nil, false)
		case code == handoff.ErrCodeExists:
			// The agent holds the connection already (handed off
			// twice): it lives there.
			s.owner.Answered(c.Backend, m.ID, true)
		default:
			s.owner.Answered(c.Backend, m.ID, false)
		}
	case handoff.MsgOwners:
		if m.ID&lookupBit != 0 {
			s.owner.Owners(c.Backend, m.ID&^lookupBit, m.Body, true)
		}
	case handoff.MsgLoad:
		if active, h, err := handoff.DecodeLoadBody(m.Body); err == nil {
			if h != c.health {
				s.log.Info().Str("backend", s.targets[c.Backend].Name).Stringer("health", h).Msg("agent health")
			}
			c.active, c.health = active, h
		}
	case handoff.MsgPing:
		_ = c.sess.Send(handoff.MsgPong, m.ID, nil)
	case handoff.MsgPong:
		if c.pingAt != 0 && m.ID == c.pingID {
			c.pingAt = 0
			c.bad = 0
			c.good++
			if c.down && c.good >= s.cfg.HealthRise {
				c.down = false
				s.log.Info().Str("backend", s.targets[c.Backend].Name).Msg("back-end up")
			}
		}
	case handoff.MsgGoAway:
		c.goaway = true // retired once this read is done
	}
}

// Step starts the connections that are due, gives up on those that take
// too long, runs the health checks of the ready ones, and closes the
// retired ones whose time is up.
func (s *Set) Step(now mono.Time) {
	s.now = now
	for b, c := range s.conns {
		if !s.targets[b].Removed {
			s.step(c)
		}
	}
	live := s.retired[:0]
	for _, c := range s.retired {
		if c.sock != nil && now < c.retireAt {
			live = append(live, c)
		} else {
			c.close()
		}
	}
	clear(s.retired[len(live):])
	s.retired = live
}

func (s *Set) step(c *Conn) {
	switch c.state {
	case StateReady:
		s.check(c)
	case StateIdle:
		if s.now < c.retryAt {
			return
		}
		sock, err := s.dial(s.targets[c.Backend].Agent)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.sock, c.state = sock, StateConnecting
		c.deadline = s.now.Add(s.cfg.ConnectTimeout)
	case StateConnecting, StateAuth:
		if s.now >= c.deadline {
			s.fail(c, errTimeout)
		}
	}
}

// check runs the switch's checks of a ready connection: a PING every
// HealthInterval, a failure for each one not answered within HealthTimeout,
// and the connection dropped (the back-end down) after HealthFall failures
// in a row.
func (s *Set) check(c *Conn) {
	if c.pingAt != 0 && s.now >= c.pingAt.Add(s.cfg.HealthTimeout) {
		c.pingAt = 0
		c.good = 0
		c.bad++
		if c.bad >= s.cfg.HealthFall {
			s.fail(c, errHealthCheck)
			return
		}
	}
	if c.pingAt == 0 && s.now >= c.nextPing {
		c.pingID++
		if err := c.sess.Send(handoff.MsgPing, c.pingID, nil); err != nil {
			s.fail(c, err)
			return
		}
		c.pingAt, c.nextPing = s.now, s.now.Add(s.cfg.HealthInterval)
		s.flush(c)
	}
}

// Usable reports whether new connections may be handed to back-end b.
func (s *Set) Usable(b int) bool { return s.sender(b).Usable() }

// sender returns the connection that new handoffs to back-end b go on: its
// current one, or, while that one is not ready yet after a GOAWAY, the
// retired one for the first half of its life. An agent that said GOAWAY
// still serves every HANDOFF it gets until the switch closes, so an upgrade
// leaves no moment without a back-end.
func (s *Set) sender(b int) *Conn {
	c := s.conns[b]
	if c.state == StateReady || c.down {
		return c
	}
	for i := len(s.retired) - 1; i >= 0; i-- {
		if r := s.retired[i]; r.Backend == b && s.now < r.retireAt.Add(-s.cfg.AnswerTimeout/2) {
			return r
		}
	}
	return c
}

// SendHandoff sends a HANDOFF to back-end b (which must be Usable) and
// writes it out. id must leave bit 63 clear. An error means the HANDOFF did not leave: the caller
// still owns the connection. A write that finds the connection broken
// fails it (the owner hears Down and Lost for the handoffs sent before)
// and returns the error.
func (s *Set) SendHandoff(b int, id uint64, st *handoff.ConnState, request []byte) error {
	c := s.sender(b)
	if err := c.sess.SendHandoff(id, st, request); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		s.fail(c, err)
		return err
	}
	return nil
}

// Starting reports whether back-end b's first connection is still being
// made: never ready, never failed (a switch that has just started, or a
// back-end a reload added).
func (s *Set) Starting(b int) bool {
	c := s.conns[b]
	return !c.wasReady && c.lastErr == nil && !s.targets[b].Removed
}

// Ready reports whether back-end b's current connection is ready: its
// agent can answer a LOOKUP, whether or not it takes new connections.
func (s *Set) Ready(b int) bool { return s.conns[b].state == StateReady }

// SendLookup sends a LOOKUP with id (which must fit in 63 bits) and body
// (see handoff.AppendLookupBody) to back-end b's agent, which must be
// Ready, and writes it out. An error means it did not leave; a write that
// finds the connection broken fails it, as SendHandoff does.
func (s *Set) SendLookup(b int, id uint64, body []byte) error {
	c := s.conns[b]
	if err := c.sess.Send(handoff.MsgLookup, id|lookupBit, body); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		s.fail(c, err)
		return err
	}
	return nil
}

func (s *Set) flush(c *Conn) {
	if err := c.flush(); err != nil {
		s.fail(c, err)
	}
}

// Fail closes back-end b's connection as broken by err (tests use it to
// cut a connection).
func (s *Set) Fail(b int, err error) { s.fail(s.conns[b], err) }

// fail closes a connection, marks its back-end down, schedules a
// reconnection with exponential backoff, and tells the owner that the
// handoffs waiting on it are lost.
func (s *Set) fail(c *Conn, err error) {
	was := c.state
	c.close()
	if c.retireAt != 0 {
		// A retired connection broke: its handoffs, if any, time out;
		// the back-end is on its new connection.
		return
	}
	name := s.targets[c.Backend].Name
	if !c.down {
		c.down = true
		s.owner.Down(c.Backend)
		s.log.Warn().Str("backend", name).Err(err).Msg("back-end down")
	}
	c.good, c.bad = 0, 0
	c.backoff = min(max(2*c.backoff, s.cfg.ReconnectMin), s.cfg.ReconnectMax)
	c.retryAt = s.now.Add(c.backoff)
	if was == StateReady || c.lastErr == nil || err.Error() != c.lastErr.Error() {
		s.log.Warn().Str("backend", name).Str("state", was.String()).Err(err).Dur("retry_in", c.backoff).Msg("control connection down")
	}
	c.lastErr = err
	if was == StateReady {
		s.owner.Lost(c.Backend)
	}
}

// Close closes every connection.
func (s *Set) Close() {
	for _, list := range [2][]*Conn{s.conns, s.retired} {
		for _, c := range list {
			c.close()
		}
	}
}
