package controltest

import (
	"errors"

	"webswitch/handoff"
	"webswitch/internal/sys"
)

// Agent is the agent's end of a Pipe, run by a test with a real
// handoff.Session: Pump answers PINGs (unless Silent) and collects every
// other message. Once warm it allocates nothing.
type Agent struct {
	Sock   *End
	Sess   *handoff.Session
	Msgs   []handoff.Msg // received since the last Reset, PINGs aside; bodies valid until then
	Pings  int           // PINGs received
	Silent bool          // leaves PINGs unanswered: a wedged agent

	buf    []byte
	n      int
	bodies []byte
}

// NewAgent returns the agent end on sock, its HELLO queued.
func NewAgent(sock *End, secret []byte) *Agent {
	return &Agent{Sock: sock, Sess: handoff.NewAgentSession(secret, nil), buf: make([]byte, handoff.MaxFrameToAgent)}
}

// Pump reads what the switch sent, handles it, and writes what the session
// has pending. It reports whether any byte moved, and the session's error.
// A closed pipe moves nothing and is no error.
func (a *Agent) Pump() (moved bool, err error) {
	n, err := a.Sock.Read(a.buf[a.n:])
	if err != nil && !errors.Is(err, sys.ErrClosed) {
		return false, err
	}
	if n > 0 {
		moved = true
		a.n += n
		off := 0
		for {
			used, m, ok, err := a.Sess.Receive(a.buf[off:a.n])
			if err != nil {
				return moved, err
			}
			if used == 0 {
				break
			}
			off += used
			switch {
			case ok && m.Type == handoff.MsgPing:
				a.Pings++
				if !a.Silent {
					if err := a.Sess.Send(handoff.MsgPong, m.ID, nil); err != nil {
						return moved, err
					}
				}
			case ok:
				start := len(a.bodies)
				a.bodies = append(a.bodies, m.Body...)
				m.Body = a.bodies[start:]
				a.Msgs = append(a.Msgs, m)
			}
		}
		a.n = copy(a.buf, a.buf[off:a.n])
	}
	if p := a.Sess.Pending(); len(p) > 0 {
		n, err := a.Sock.Write(p)
		if errors.Is(err, sys.ErrClosed) {
			return moved, nil // the switch closed this connection
		}
		if err != nil {
			return moved, err
		}
		a.Sess.Written(n)
		moved = moved || n > 0
	}
	return moved, nil
}

// Reset forgets the messages received.
func (a *Agent) Reset() { a.Msgs, a.bodies = a.Msgs[:0], a.bodies[:0] }
