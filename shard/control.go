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
	draining bool
	active   uint32 // the agent's last LOAD report
	lastErr  error
}

func newControl(backend int) *control {
	return &control{backend: backend, fd: -1, state: ctlIdle}
}

// step starts a connection when one is due, and gives up on one that takes
// too long.
func (s *Shard) ctlStep(c *control) {
	switch c.state {
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
		if active, draining, err := handoff.DecodeLoadBody(m.Body); err == nil {
			c.active, c.draining = active, draining
		}
	case handoff.MsgPing:
		_ = c.sess.Send(handoff.MsgPong, m.ID, nil)
	}
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

// ctlFail closes a control connection, schedules a reconnection with
// exponential backoff, and fails the handoffs waiting on it.
func (s *Shard) ctlFail(c *control, err error) {
	if c.fd >= 0 {
		sys.Close(c.fd)
		c.fd = -1
	}
	was := c.state
	c.state = ctlIdle
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
