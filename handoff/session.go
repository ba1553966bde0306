package handoff

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"unicode/utf8"
)

// Handshake constants. The agent opens with HELLO(Na); the switch answers
// AUTH(Ns, HMAC(secret, labelSwitch||Na||Ns)); the agent checks it and answers
// AUTH_OK(HMAC(secret, labelAgent||Na||Ns)). Both then key every later message
// with K = HMAC(secret, labelSession||Na||Ns). Handshake messages carry an
// all-zero MAC: their bodies are the proofs.
const (
	nonceLen     = 16
	proofLen     = sha256.Size
	labelSwitch  = "webswitch-auth-switch"
	labelAgent   = "webswitch-auth-agent"
	labelSession = "webswitch-session"
)

// Direction bytes mixed into every MAC, so a message cannot be reflected back
// to its sender.
const (
	dirToAgent  byte = 1 // switch → agent
	dirToSwitch byte = 2 // agent → switch
)

type sessionState uint8

const (
	stateInvalid    sessionState = iota
	stateWaitHello               // switch: waiting for the agent's HELLO
	stateWaitAuth                // agent: HELLO queued, waiting for AUTH
	stateWaitAuthOK              // switch: AUTH queued, waiting for AUTH_OK
	stateReady                   // handshake complete
)

// Msg is one application message received on a Session.
type Msg struct {
	Type MsgType
	ID   uint64 // the request id: a reply carries the id of its request
	Body []byte // aliases the buffer passed to Receive
}

// Session is the authenticated framing of one control connection, without
// I/O, for both ends. The owner feeds received bytes to Receive and writes
// Pending to the connection. Not safe for concurrent use.
//
// Every error from Receive is fatal: the session stays failed, Receive and the
// Send methods keep returning that error, and the connection must be closed.
type Session struct {
	agent   bool
	state   sessionState
	maxRecv int       // body limit of the frames this end receives
	maxSend int       // body limit of the frames this end sends
	err     error     // sticky fatal error
	rand    io.Reader // nonce source
	auth    hash.Hash // HMAC keyed with the shared secret; handshake only
	mac     hash.Hash // HMAC keyed with the session key once ready
	na, ns  [nonceLen]byte
	sendDir byte
	recvDir byte
	sendCtr uint64
	recvCtr uint64

	out []byte // queued frames; out[off:] is still to be written
	off int

	prefix [9]byte        // direction and counter fed to the MAC
	sum    [proofLen]byte // MAC output
	check  ConnState      // scratch for SendHandoff's validation
	zero   [MACLen]byte   // the MAC of handshake messages
}

// NewSwitchSession returns the switch (connecting) end of a control
// connection, waiting for the agent's HELLO. rand supplies the nonce; nil
// means crypto/rand.
func NewSwitchSession(secret []byte, rand io.Reader) *Session {
	s := newSession(secret, rand)
	s.sendDir, s.recvDir = dirToAgent, dirToSwitch
	s.maxSend, s.maxRecv = MaxBodyToAgent, MaxBodyToSwitch
	s.state = stateWaitHello
	return s
}

// NewAgentSession returns the agent (accepting) end of a control connection
// with its HELLO already queued in Pending. rand supplies the nonce; nil
// means crypto/rand. If reading the nonce fails the session is failed from
// the start and Receive returns that error.
func NewAgentSession(secret []byte, rand io.Reader) *Session {
	s := newSession(secret, rand)
	s.agent = true
	s.sendDir, s.recvDir = dirToSwitch, dirToAgent
	s.maxSend, s.maxRecv = MaxBodyToSwitch, MaxBodyToAgent
	if _, err := io.ReadFull(s.rand, s.na[:]); err != nil {
		s.err = fmt.Errorf("handoff: reading nonce: %w", err)
		return s
	}
	s.queueHandshake(MsgHello, s.na[:], nil)
	s.state = stateWaitAuth
	return s
}

func newSession(secret []byte, r io.Reader) *Session {
	if r == nil {
		r = rand.Reader
	}
	return &Session{rand: r, auth: hmac.New(sha256.New, secret)}
}

// Ready reports whether the handshake is complete, so Send may be used.
func (s *Session) Ready() bool { return s.state == stateReady }

// Pending returns the bytes waiting to be written to the connection. The
// slice is valid until the next call to Receive, Written or a Send method.
func (s *Session) Pending() []byte { return s.out[s.off:] }

// Written records that the first n bytes of Pending were written.
func (s *Session) Written(n int) {
	s.off += n
	if s.off >= len(s.out) {
		s.out, s.off = s.out[:0], 0
	}
}

// Receive parses at most one message from the start of in. It returns how
// many bytes it consumed: 0 and no error when in does not yet hold a complete
// message. Handshake messages are handled inside (replies are queued in
// Pending) and reported with ok false. An application message is returned
// with ok true; its body aliases in.
//
// The header is checked as soon as its HeaderLen bytes are in, before any
// body byte is needed: ErrVersion (version or flags), ErrType (an unknown
// type, or one this end never receives), ErrTooLarge (a body over the limit
// of its direction, MaxBodyToAgent or MaxBodyToSwitch). Then, with the whole
// frame: ErrMAC (a forged, replayed, reordered or damaged message), ErrState
// (a handshake message out of turn, an application message before the
// handshake), ErrAuth (wrong secret on the other end), ErrTruncated and
// ErrMalformed (handshake body of the wrong size).
func (s *Session) Receive(in []byte) (consumed int, m Msg, ok bool, err error) {
	if s.err != nil {
		return 0, Msg{}, false, s.err
	}
	consumed, m, ok, err = s.receive(in)
	if err != nil {
		s.err = err
		return 0, Msg{}, false, err
	}
	return consumed, m, ok, nil
}

func (s *Session) receive(in []byte) (int, Msg, bool, error) {
	if len(in) < HeaderLen {
		return 0, Msg{}, false, nil
	}
	be := binary.BigEndian
	if in[hdrVersion] != Version || be.Uint16(in[hdrFlags:]) != 0 {
		return 0, Msg{}, false, ErrVersion
	}
	t := MsgType(in[hdrType])
	if !s.receives(t) {
		return 0, Msg{}, false, ErrType
	}
	blen := be.Uint32(in[hdrLen:])
	if blen > uint32(s.maxRecv) {
		return 0, Msg{}, false, ErrTooLarge
	}
	end := HeaderLen + int(blen)
	total := end + MACLen
	if len(in) < total {
		return 0, Msg{}, false, nil
	}
	m := Msg{Type: t, ID: be.Uint64(in[hdrID:]), Body: in[HeaderLen:end]}
	mac := in[end:total]
	if s.state != stateReady {
		return total, Msg{}, false, s.handshake(m, mac)
	}
	if !hmac.Equal(s.frameMAC(s.recvDir, s.recvCtr, in[:end]), mac) {
		return 0, Msg{}, false, ErrMAC
	}
	s.recvCtr++
	if isHandshake(t) {
		return 0, Msg{}, false, ErrState
	}
	return total, m, true, nil
}

// handshake handles one handshake message with its (all-zero) MAC.
func (s *Session) handshake(m Msg, mac []byte) error {
	want, size := MsgHello, nonceLen
	switch s.state {
	case stateWaitAuth:
		want, size = MsgAuth, nonceLen+proofLen
	case stateWaitAuthOK:
		want, size = MsgAuthOK, proofLen
	}
	switch {
	case m.Type != want:
		return ErrState
	case !hmac.Equal(mac, s.zero[:]):
		return ErrMAC
	case len(m.Body) < size:
		return ErrTruncated
	case len(m.Body) > size:
		return ErrMalformed
	}
	switch s.state {
	case stateWaitHello:
		copy(s.na[:], m.Body)
		if _, err := io.ReadFull(s.rand, s.ns[:]); err != nil {
			return fmt.Errorf("handoff: reading nonce: %w", err)
		}
		p := s.proof(labelSwitch)
		s.queueHandshake(MsgAuth, s.ns[:], p[:])
		s.state = stateWaitAuthOK
	case stateWaitAuth:
		copy(s.ns[:], m.Body)
		p := s.proof(labelSwitch)
		if !hmac.Equal(p[:], m.Body[nonceLen:]) {
			return ErrAuth
		}
		p = s.proof(labelAgent)
		s.queueHandshake(MsgAuthOK, p[:], nil)
		s.becomeReady()
	case stateWaitAuthOK:
		p := s.proof(labelAgent)
		if !hmac.Equal(p[:], m.Body) {
			return ErrAuth
		}
		s.becomeReady()
	}
	return nil
}

// proof returns HMAC-SHA256(secret, label || Na || Ns).
func (s *Session) proof(label string) [proofLen]byte {
	var p [proofLen]byte
	s.auth.Reset()
	io.WriteString(s.auth, label)
	s.auth.Write(s.na[:])
	s.auth.Write(s.ns[:])
	s.auth.Sum(p[:0])
	return p
}

func (s *Session) becomeReady() {
	k := s.proof(labelSession)
	s.mac = hmac.New(sha256.New, k[:])
	clear(k[:])
	s.auth = nil
	s.state = stateReady
}

func isHandshake(t MsgType) bool { return t <= MsgAuthOK }

// receives reports whether this end ever receives message t, handshake
// messages included.
func (s *Session) receives(t MsgType) bool {
	switch t {
	case MsgPing, MsgPong:
		return true
	case MsgAuth, MsgHandoff, MsgLookup:
		return s.agent
	case MsgHello, MsgAuthOK, MsgOK, MsgErr, MsgLoad, MsgGoAway, MsgOwners:
		return !s.agent
	}
	return false
}

// sends reports whether this end may send application message t.
func (s *Session) sends(t MsgType) bool {
	switch t {
	case MsgPing, MsgPong:
		return true
	case MsgHandoff, MsgLookup:
		return !s.agent
	case MsgOK, MsgErr, MsgLoad, MsgGoAway, MsgOwners:
		return s.agent
	}
	return false
}

// frameMAC returns the first MACLen bytes of HMAC(K, dir || ctr || frame).
// The result aliases s.sum.
func (s *Session) frameMAC(dir byte, ctr uint64, frame []byte) []byte {
	s.prefix[0] = dir
	binary.BigEndian.PutUint64(s.prefix[1:], ctr)
	s.mac.Reset()
	s.mac.Write(s.prefix[:])
	s.mac.Write(frame)
	return s.mac.Sum(s.sum[:0])[:MACLen]
}

// Send frames, MACs and queues an application message. It returns ErrState
// before the handshake is complete, ErrType for a handshake type or one this
// end never sends, ErrTooLarge for a body over the limit of this end's
// direction (MaxBodyToAgent or MaxBodyToSwitch), or the session's fatal
// error.
func (s *Session) Send(t MsgType, id uint64, body []byte) error {
	if err := s.canSend(t); err != nil {
		return err
	}
	if len(body) > s.maxSend {
		return ErrTooLarge
	}
	start := s.beginFrame(t, id)
	s.out = append(s.out, body...)
	s.endFrame(start)
	return nil
}

// SendHandoff queues a HANDOFF for st and request, encoding straight into the
// pending buffer: it does not allocate once the buffer has grown. Besides
// Send's errors (ErrTooLarge for a request over MaxRequest) it returns
// ErrMalformed, queuing nothing, for a state the agent would reject (see
// DecodeHandoffBody).
func (s *Session) SendHandoff(id uint64, st *ConnState, request []byte) error {
	if err := s.canSend(MsgHandoff); err != nil {
		return err
	}
	if len(request) > MaxRequest {
		return ErrTooLarge
	}
	start := s.beginFrame(MsgHandoff, id)
	s.out = AppendHandoffBody(s.out, st, request)
	if _, err := DecodeHandoffBody(s.out[start+HeaderLen:], &s.check); err != nil {
		s.out = s.out[:start]
		return err
	}
	s.endFrame(start)
	return nil
}

// SendErr queues an ERR reply with code and reason. A reason too long for
// MaxBodyToSwitch is cut to fit, at a UTF-8 boundary.
func (s *Session) SendErr(id uint64, code uint16, reason string) error {
	if err := s.canSend(MsgErr); err != nil {
		return err
	}
	if n := MaxBodyToSwitch - errFixedLen; len(reason) > n {
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	start := s.beginFrame(MsgErr, id)
	s.out = AppendErrBody(s.out, code, reason)
	s.endFrame(start)
	return nil
}

func (s *Session) canSend(t MsgType) error {
	switch {
	case s.err != nil:
		return s.err
	case s.state != stateReady:
		return ErrState
	case !s.sends(t):
		return ErrType
	}
	return nil
}

// beginFrame appends a header with a zero body length and returns the
// frame's offset in s.out. Already written bytes are dropped first when they
// take up more than half the buffer.
func (s *Session) beginFrame(t MsgType, id uint64) int {
	if s.off > 0 && s.off >= len(s.out)/2 {
		n := copy(s.out, s.out[s.off:])
		s.out, s.off = s.out[:n], 0
	}
	start := len(s.out)
	var h [HeaderLen]byte
	h[hdrVersion] = Version
	h[hdrType] = byte(t)
	binary.BigEndian.PutUint64(h[hdrID:], id)
	s.out = append(s.out, h[:]...)
	return start
}

// frameAt fills in the body length of the frame that starts at start and
// runs to the end of s.out, and returns the frame.
func (s *Session) frameAt(start int) []byte {
	frame := s.out[start:]
	binary.BigEndian.PutUint32(frame[hdrLen:], uint32(len(frame)-HeaderLen))
	return frame
}

// endFrame completes the application frame at start with its MAC.
func (s *Session) endFrame(start int) {
	s.out = append(s.out, s.frameMAC(s.sendDir, s.sendCtr, s.frameAt(start))...)
	s.sendCtr++
}

// queueHandshake queues a handshake message with body a||b and a zero MAC.
func (s *Session) queueHandshake(t MsgType, a, b []byte) {
	start := s.beginFrame(t, 0)
	s.out = append(s.out, a...)
	s.out = append(s.out, b...)
	s.frameAt(start)
	s.out = append(s.out, s.zero[:]...)
}
