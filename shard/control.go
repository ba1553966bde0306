package shard

import (
	"crypto/rand"
	"time"

	"webswitch/handoff"
	"webswitch/internal/sys"
)

type ctlState uint8

const (
	ctlInvalid    ctlState = iota
	ctlIdle                // not connected; retry at retryAt
	ctlConnecting          // non-blocking connect in progress
	ctlAuth                // connected; session handshake in progress
	ctlReady               // handoffs may be sent
)

var ctlStateNames = [...]string{"invalid", "idle", "connecting", "auth", "ready"}

func (s ctlState) String() string { return ctlStateNames[s] }

// ctlReadBuf holds at least one whole control message (a handoff carries up
// to the request window, 1 MiB at most).
const ctlReadBuf = 2<<20 + 64<<10

// control is a shard's control connection to one back-end's agent, driven
// by the shard loop on a non-blocking socket.
type control struct {
	backend  int
	fd       int
	state    ctlState
	sess     *handoff.Session
	rbuf     []byte
	rlen     int
	retryAt  int64
	deadline int64 // connect and handshake must be done by then
	backoff  time.Duration
	lastErr  error

	// What the agent says: its last LOAD report, and GOAWAY.
	health handoff.Health
	active uint32
	goaway bool // received: the connection is to be retired (see sender)
	// retireAt is set on a retired connection (one that got GOAWAY and
	// was replaced): it is read until then, for the answers to the
	// handoffs sent on it, and closed.
	retireAt int64

	// The switch's own checks: a PING every HealthInterval on a ready
	// connection, the first one as soon as it is ready.
	pingID   uint64
	pingAt   int64 // when the outstanding PING was sent; 0: none
	nextPing int64
	good     int  // consecutive answered PINGs
	bad      int  // consecutive unanswered PINGs
	down     bool // HealthFall checks failed, or the connection was lost; HealthRise good ones clear it
}

func newControl(backend int) *control {
	return &control{backend: backend, fd: -1, state: ctlIdle}
}

// replaceControl retires back-end b's connection: it stays open, out of
// s.ctl, until every handoff sent on it is answered or timed out, while a
// new connection starts at once (after a GOAWAY, to the agent's successor,
// which took over its listening socket). The back-end's health carries
// over.
func (s *Shard) replaceControl(b int, why string) {
	c := s.ctl[b]
	if c.fd >= 0 {
		c.retireAt = s.now + int64(s.cfg.HandoffTimeout)
		s.retired = append(s.retired, c)
	}
	n := newControl(b)
	n.down, n.good, n.retryAt = c.down, c.good, s.now
	s.ctl[b] = n
	s.log.Info().Int("shard", s.id).Str("backend", s.cfg.Backends[b].Name).Msg(why + ": reconnecting")
}

// stepRetired closes the retired connections whose time is up.
func (s *Shard) stepRetired() {
	live := s.retired[:0]
	for _, c := range s.retired {
		if c.fd >= 0 && s.now < c.retireAt {
			live = append(live, c)
		} else {
			s.ctlClose(c)
		}
	}
	clear(s.retired[len(live):])
	s.retired = live
}

// step starts a connection when one is due, gives up on one that takes too
// long, and runs the health checks of a ready one.
func (s *Shard) ctlStep(c *control) {
	switch c.state {
	case ctlReady:
		s.ctlCheck(c)
	case ctlIdle:
		if s.now < c.retryAt {
			return
		}
		fd, err := sys.DialTCP(s.cfg.Backends[c.backend].Agent)
		if err != nil {
			s.ctlFail(c, err)
			return
		}
		c.fd, c.state = fd, ctlConnecting
		c.deadline = s.now + int64(s.cfg.ConnectTimeout)
	case ctlConnecting, ctlAuth:
		if s.now >= c.deadline {
			s.ctlFail(c, errControlTimeout)
		}
	}
}

// ctlEvents handles poll events of a control connection.
func (s *Shard) ctlEvents(c *control, revents int16) {
	if c.state == ctlConnecting {
		if revents&(sys.PollOut|sys.PollErr) == 0 {
			return
		}
		if err := sys.SocketError(c.fd); err != nil {
			s.ctlFail(c, err)
			return
		}
		s.ctlConnected(c)
	}
	if revents&(sys.PollIn|sys.PollErr) != 0 {
		if err := s.ctlRead(c); err != nil {
			s.ctlFail(c, err)
			return
		}
	}
	s.ctlFlush(c)
	if c.goaway && c.retireAt == 0 {
		s.replaceControl(c.backend, "agent going away")
	}
}

// ctlConnected starts the session handshake on a connected socket.
func (s *Shard) ctlConnected(c *control) {
	c.state = ctlAuth
	c.sess = handoff.NewSwitchSession(s.cfg.Secret, rand.Reader)
	c.rlen = 0
	if c.rbuf == nil {
		c.rbuf = make([]byte, ctlReadBuf)
	}
}

func (s *Shard) ctlRead(c *control) error {
	for {
		n, err := sys.Read(c.fd, c.rbuf[c.rlen:])
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
			if c.state == ctlAuth && c.sess.Ready() {
				c.state = ctlReady
				c.backoff = 0
				c.health, c.goaway, c.pingAt, c.nextPing = handoff.HealthUp, false, 0, s.now
				s.log.Info().Int("shard", s.id).Str("backend", s.cfg.Backends[c.backend].Name).Msg("control connection ready")
			}
			if ok {
				s.ctlMessage(c, &m)
			}
		}
		c.rlen = copy(c.rbuf, c.rbuf[off:c.rlen])
	}
}

func (s *Shard) ctlMessage(c *control, m *handoff.Msg) {
	switch m.Type {
	case handoff.MsgOK:
		s.handoffDone(c.backend, m.ID, true)
	case handoff.MsgErr:
		s.handoffDone(c.backend, m.ID, false)
	case handoff.MsgLoad:
		if active, h, err := handoff.DecodeLoadBody(m.Body); err == nil {
			if h != c.health {
				s.log.Info().Int("shard", s.id).Str("backend", s.cfg.Backends[c.backend].Name).Stringer("health", h).Msg("agent health")
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
				s.log.Info().Int("shard", s.id).Str("backend", s.cfg.Backends[c.backend].Name).Msg("back-end up")
			}
		}
	case handoff.MsgGoAway:
		c.goaway = true // retired once this read is done
	}
}

// ctlCheck runs the switch's checks of a ready connection: a PING every
// HealthInterval, a failure for each one not answered within HealthTimeout,
// and the connection dropped (the back-end down) after HealthFall failures
// in a row.
func (s *Shard) ctlCheck(c *control) {
	if c.pingAt != 0 && s.now >= c.pingAt+int64(s.cfg.HealthTimeout) {
		c.pingAt = 0
		c.good = 0
		c.bad++
		if c.bad >= s.cfg.HealthFall {
			s.ctlFail(c, errHealthCheck)
			return
		}
	}
	if c.pingAt == 0 && s.now >= c.nextPing {
		c.pingID++
		if err := c.sess.Send(handoff.MsgPing, c.pingID, nil); err != nil {
			s.ctlFail(c, err)
			return
		}
		c.pingAt, c.nextPing = s.now, s.now+int64(s.cfg.HealthInterval)
		s.ctlFlush(c)
	}
}

// usable reports whether new connections may be handed to c's back-end on
// c.
func (c *control) usable() bool {
	return c.state == ctlReady && !c.down && c.health == handoff.HealthUp
}

// sender returns the connection that new handoffs to back-end b go on: its
// current one, or, while that one is not ready yet after a GOAWAY, the
// retired one for the first half of its life. An agent that said GOAWAY
// still serves every HANDOFF it gets until the switch closes, so an upgrade
// leaves no moment without a back-end.
func (s *Shard) sender(b int) *control {
	c := s.ctl[b]
	if c.state == ctlReady || c.down {
		return c
	}
	for i := len(s.retired) - 1; i >= 0; i-- {
		if r := s.retired[i]; r.backend == b && s.now < r.retireAt-int64(s.cfg.HandoffTimeout)/2 {
			return r
		}
	}
	return c
}

// ctlFlush writes what the session has pending.
func (s *Shard) ctlFlush(c *control) {
	for c.state >= ctlAuth {
		p := c.sess.Pending()
		if len(p) == 0 {
			return
		}
		n, err := sys.Write(c.fd, p)
		if err != nil {
			s.ctlFail(c, err)
			return
		}
		if n == 0 {
			return
		}
		c.sess.Written(n)
	}
}

// ctlClose closes a control connection; it does not touch the handoffs
// waiting on it.
func (s *Shard) ctlClose(c *control) {
	if c.fd >= 0 {
		sys.Close(c.fd)
		c.fd = -1
	}
	c.state = ctlIdle
}

// ctlFail closes a control connection, marks its back-end down, schedules a
// reconnection with exponential backoff, and fails the handoffs waiting on
// it.
func (s *Shard) ctlFail(c *control, err error) {
	was := c.state
	s.ctlClose(c)
	if c.retireAt != 0 {
		// A retired connection broke: its handoffs, if any, time out
		// (504); the back-end is on its new connection.
		return
	}
	if !c.down {
		c.down = true
		s.bc[c.backend].Downs.Add(1)
		s.log.Warn().Int("shard", s.id).Str("backend", s.cfg.Backends[c.backend].Name).Err(err).Msg("back-end down")
	}
	c.good, c.bad = 0, 0
	c.backoff = min(max(2*c.backoff, s.cfg.ReconnectMin), s.cfg.ReconnectMax)
	c.retryAt = s.now + int64(c.backoff)
	if was == ctlReady || c.lastErr == nil || err.Error() != c.lastErr.Error() {
		s.log.Warn().Int("shard", s.id).Str("backend", s.cfg.Backends[c.backend].Name).Str("state", was.String()).Err(err).Dur("retry_in", c.backoff).Msg("control connection down")
	}
	c.lastErr = err
	if was == ctlReady {
		s.failHandoffs(c.backend)
	}
}

// pollEvents returns the events to wait for on a control connection.
func (c *control) pollEvents() int16 {
	switch c.state {
	case ctlConnecting:
		return sys.PollOut
	case ctlAuth, ctlReady:
		if len(c.sess.Pending()) > 0 {
			return sys.PollIn | sys.PollOut
		}
		return sys.PollIn
	}
	return 0
}
