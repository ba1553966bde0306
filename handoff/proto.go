package handoff

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strconv"
)

// Version is the wire protocol version this package speaks. Version 2
// dropped the handshake RTT from the HANDOFF body (TCP_REPAIR cannot set an
// RTT; the agent measures it with its probe byte), so the body layout
// changed. Version 3 added LOOKUP and OWNERS (flow recovery). A peer of
// another version is refused with ErrVersion.
const Version = 3

// Frame sizes. Every message is a 16-byte header, the body and a 16-byte MAC;
// all integers are big-endian:
//
//	0  u8  version
//	1  u8  type
//	2  u16 flags (0)
//	4  u32 body length
//	8  u64 id
//	16 body
//	.. MAC
//
// The body limit depends on the direction: only the switch sends the large
// message (HANDOFF, with the client's request); the agent's messages are
// small. Each end sizes its read buffer for the frames it receives: the
// switch MaxFrameToSwitch, the agent MaxFrameToAgent.
const (
	HeaderLen = 16 // bytes in a frame header
	MACLen    = 16 // bytes in a frame's trailing MAC

	// MaxBodyToAgent is the largest body the switch sends: a HANDOFF
	// carrying MaxRequest request bytes.
	MaxBodyToAgent = HandoffFixedLen + MaxRequest
	// MaxBodyToSwitch is the largest body an agent sends: its handshake
	// messages, OK, LOAD, PING, PONG and GOAWAY are far smaller, and
	// SendErr cuts an ERR's reason to fit.
	MaxBodyToSwitch = 1 << 10

	MaxFrameToAgent  = HeaderLen + MaxBodyToAgent + MACLen  // largest frame an agent receives
	MaxFrameToSwitch = HeaderLen + MaxBodyToSwitch + MACLen // largest frame a switch receives
)

// MaxRequest is the most client bytes a HANDOFF carries: the largest request
// window a switch may buffer per connection (conf checks
// switch.request_window against it).
const MaxRequest = 1 << 20

// Header field offsets.
const (
	hdrVersion = 0
	hdrType    = 1
	hdrFlags   = 2
	hdrLen     = 4
	hdrID      = 8
)

// MsgType is the type of a control message. The zero value is invalid.
type MsgType uint8

// Message types. HELLO, AUTH and AUTH_OK make up the handshake and are handled
// inside Session; the others are application messages.
const (
	MsgHello   MsgType = 1 // agent→switch: the agent's nonce
	MsgAuth    MsgType = 2 // switch→agent: the switch's nonce and proof
	MsgAuthOK  MsgType = 3 // agent→switch: the agent's proof
	MsgHandoff MsgType = 4 // switch→agent: a connection to re-create (see AppendHandoffBody)
	MsgOK      MsgType = 5 // agent→switch: the handoff with this id succeeded (empty body)
	MsgErr     MsgType = 6 // agent→switch: the HANDOFF or LOOKUP with this id failed (see DecodeErrBody)
	MsgLoad    MsgType = 7 // agent→switch: load and health report (see AppendLoadBody)
	MsgPing    MsgType = 8 // either way: liveness probe (empty body)
	MsgPong    MsgType = 9 // either way: answer to a PING with the same id (empty body)
	// MsgGoAway (agent→switch, empty body): the agent is stopping. It
	// still answers the HANDOFFs already sent on this connection; the
	// switch sends no more, closes the connection once they are answered,
	// and reconnects (to the agent's successor, after an upgrade).
	MsgGoAway MsgType = 10
	// MsgLookup (switch→agent): which of these connections does the
	// agent's host hold? (see AppendLookupBody). A switch asks when a
	// segment comes for a connection it has no entry for: after a
	// restart, or when a router moved the flow to it.
	MsgLookup MsgType = 11
	// MsgOwners (agent→switch): the answer to the LOOKUP with the same
	// id, one entry per connection asked, in order (see AppendOwner).
	MsgOwners MsgType = 12
)

var msgTypeNames = [...]string{
	MsgHello:   "HELLO",
	MsgAuth:    "AUTH",
	MsgAuthOK:  "AUTH_OK",
	MsgHandoff: "HANDOFF",
	MsgOK:      "OK",
	MsgErr:     "ERR",
	MsgLoad:    "LOAD",
	MsgPing:    "PING",
	MsgPong:    "PONG",
	MsgGoAway:  "GOAWAY",
	MsgLookup:  "LOOKUP",
	MsgOwners:  "OWNERS",
}

// Valid reports whether t is a message type of this protocol version.
func (t MsgType) Valid() bool { return t >= MsgHello && t <= MsgOwners }

// String returns the protocol name of t, or "MsgType(n)" for an unknown type.
func (t MsgType) String() string {
	if t.Valid() {
		return msgTypeNames[t]
	}
	return "MsgType(" + strconv.Itoa(int(t)) + ")"
}

// ERR codes carried in the body of a MsgErr.
const (
	ErrCodeRecreate  uint16 = 1 // the agent could not re-create the socket
	ErrCodeBusy      uint16 = 2 // the agent is overloaded, or cannot look up its connections (LOOKUP)
	ErrCodeDraining  uint16 = 3 // the agent is draining and takes no new connections
	ErrCodeMalformed uint16 = 4 // the HANDOFF or LOOKUP body did not decode
	// ErrCodeExists: the agent's host already holds a socket for this
	// connection, not in TIME_WAIT: the same connection, handed off
	// again by a switch that did not know (it restarted while the first
	// HANDOFF was pending). The connection lives there: the switch takes
	// the answer as OK and must not hand it to another back-end.
	ErrCodeExists uint16 = 5
)

// Errors returned by the codec and Session. Every one of them is fatal for
// the control connection it came from; none allocates when returned.
var (
	ErrVersion   = errors.New("handoff: unsupported protocol version or flags")
	ErrType      = errors.New("handoff: unknown or misdirected message type")
	ErrMAC       = errors.New("handoff: message authentication failed")
	ErrTooLarge  = errors.New("handoff: message body too large")
	ErrTruncated = errors.New("handoff: message truncated")
	ErrState     = errors.New("handoff: message not valid in this session state")
	ErrAuth      = errors.New("handoff: handshake authentication failed")
	ErrMalformed = errors.New("handoff: malformed message body")
)

// HandoffFixedLen is the size of a HANDOFF body without its request bytes.
const HandoffFixedLen = hoReqLen + 4

// HANDOFF body layout (all big-endian), followed by the request bytes.
const (
	hoFamily    = 0
	hoClientIP  = 1
	hoClientPt  = 5
	hoVIP       = 7
	hoVIPPort   = 11
	hoSndISN    = 13
	hoSndNxt    = 17
	hoRcvIRS    = 21
	hoRcvNxt    = 25
	hoSndWnd    = 29
	hoRcvWnd    = 33
	hoMSS       = 37
	hoSndWScale = 39
	hoRcvWScale = 40
	hoFlags     = 41
	hoReqLen    = 42

	familyIPv4 = 4

	flagWScaleOK = 1 << 0
	flagSACKOK   = 1 << 1
	knownFlags   = flagWScaleOK | flagSACKOK

	maxWScale = 14 // RFC 7323
	minMSS    = 64
)

// AppendHandoffBody appends the HANDOFF body for st and request to dst and
// returns the extended slice. It does not allocate when dst has room for
// HandoffFixedLen+len(request) more bytes.
//
// Only IPv4 addresses (or IPv4-mapped IPv6) can be encoded; any other address
// is written with family 0, which DecodeHandoffBody rejects.
func AppendHandoffBody(dst []byte, st *ConnState, request []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, HandoffFixedLen+len(request))[:n+HandoffFixedLen+len(request)]
	b := dst[n : n+HandoffFixedLen]
	client, vip := st.Client.Addr().Unmap(), st.VIP.Addr().Unmap()
	if client.Is4() && vip.Is4() {
		b[hoFamily] = familyIPv4
		c4, v4 := client.As4(), vip.As4()
		copy(b[hoClientIP:], c4[:])
		copy(b[hoVIP:], v4[:])
	} else {
		b[hoFamily] = 0
		clear(b[hoClientIP : hoClientIP+4])
		clear(b[hoVIP : hoVIP+4])
	}
	be := binary.BigEndian
	be.PutUint16(b[hoClientPt:], st.Client.Port())
	be.PutUint16(b[hoVIPPort:], st.VIP.Port())
	be.PutUint32(b[hoSndISN:], st.SndISN)
	be.PutUint32(b[hoSndNxt:], st.SndNxt)
	be.PutUint32(b[hoRcvIRS:], st.RcvIRS)
	be.PutUint32(b[hoRcvNxt:], st.RcvNxt)
	be.PutUint32(b[hoSndWnd:], st.SndWnd)
	be.PutUint32(b[hoRcvWnd:], st.RcvWnd)
	be.PutUint16(b[hoMSS:], st.MSS)
	b[hoSndWScale] = st.SndWScale
	b[hoRcvWScale] = st.RcvWScale
	var flags byte
	if st.WScaleOK {
		flags |= flagWScaleOK
	}
	if st.SACKOK {
		flags |= flagSACKOK
	}
	b[hoFlags] = flags
	be.PutUint32(b[hoReqLen:], uint32(len(request)))
	copy(dst[n+HandoffFixedLen:], request)
	return dst
}

// DecodeHandoffBody decodes a HANDOFF body into st and returns the request
// bytes, which alias body. It does not allocate. It returns ErrTruncated when
// body is shorter than the fixed part, and ErrMalformed when the family is not
// IPv4, the request length does not match the body, RcvNxt is not
// RcvIRS+1+len(request), a window scale exceeds 14, the MSS is below 64 or an
// unknown flag bit is set. st is left unspecified on error.
func DecodeHandoffBody(body []byte, st *ConnState) (request []byte, err error) {
	if len(body) < HandoffFixedLen {
		return nil, ErrTruncated
	}
	be := binary.BigEndian
	reqLen := be.Uint32(body[hoReqLen:])
	if body[hoFamily] != familyIPv4 || uint64(reqLen) != uint64(len(body)-HandoffFixedLen) {
		return nil, ErrMalformed
	}
	flags := body[hoFlags]
	*st = ConnState{
		Client:    netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[hoClientIP:])), be.Uint16(body[hoClientPt:])),
		VIP:       netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[hoVIP:])), be.Uint16(body[hoVIPPort:])),
		SndISN:    be.Uint32(body[hoSndISN:]),
		SndNxt:    be.Uint32(body[hoSndNxt:]),
		RcvIRS:    be.Uint32(body[hoRcvIRS:]),
		RcvNxt:    be.Uint32(body[hoRcvNxt:]),
		SndWnd:    be.Uint32(body[hoSndWnd:]),
		RcvWnd:    be.Uint32(body[hoRcvWnd:]),
		MSS:       be.Uint16(body[hoMSS:]),
		SndWScale: body[hoSndWScale],
		RcvWScale: body[hoRcvWScale],
		WScaleOK:  flags&flagWScaleOK != 0,
		SACKOK:    flags&flagSACKOK != 0,
	}
	switch {
	case flags&^knownFlags != 0,
		st.RcvNxt != st.RcvIRS+1+reqLen, // wraps mod 2^32 like the sequence space
		st.SndWScale > maxWScale || st.RcvWScale > maxWScale,
		st.MSS < minMSS:
		return nil, ErrMalformed
	}
	return body[HandoffFixedLen:], nil
}

// errFixedLen is the size of an ERR body without its reason text.
const errFixedLen = 2

// AppendErrBody appends an ERR body (code, then the reason text) to dst.
func AppendErrBody(dst []byte, code uint16, reason string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}

// DecodeErrBody decodes an ERR body. The reason aliases body. It returns
// ErrTruncated when body is shorter than the code.
func DecodeErrBody(body []byte) (code uint16, reason []byte, err error) {
	if len(body) < errFixedLen {
		return 0, nil, ErrTruncated
	}
	return binary.BigEndian.Uint16(body), body[errFixedLen:], nil
}

// Health is an agent's own view of its back-end, carried in LOAD.
type Health uint8

// Health states.
const (
	HealthUp       Health = 0 // serving; new connections welcome
	HealthDraining Health = 1 // serving the connections it has; no new ones (an operator's drain)
	HealthDown     Health = 2 // the agent's server does not answer; no new connections
	maxHealth             = HealthDown
)

var healthNames = [...]string{"up", "draining", "down"}

// String returns "up", "draining", "down", or "Health(n)".
func (h Health) String() string {
	if h <= maxHealth {
		return healthNames[h]
	}
	return "Health(" + strconv.Itoa(int(h)) + ")"
}

// LoadLen is the size of a LOAD body.
const LoadLen = 5

// AppendLoadBody appends a LOAD body (active connections, health) to dst.
func AppendLoadBody(dst []byte, active uint32, h Health) []byte {
	dst = binary.BigEndian.AppendUint32(dst, active)
	return append(dst, byte(h))
}

// DecodeLoadBody decodes a LOAD body. It returns ErrTruncated for a short
// body and ErrMalformed for a long one or an unknown health state.
func DecodeLoadBody(body []byte) (active uint32, h Health, err error) {
	switch {
	case len(body) < LoadLen:
		return 0, 0, ErrTruncated
	case len(body) > LoadLen || Health(body[4]) > maxHealth:
		return 0, 0, ErrMalformed
	}
	return binary.BigEndian.Uint32(body), Health(body[4]), nil
}
