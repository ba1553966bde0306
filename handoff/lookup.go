package handoff

import (
	"encoding/binary"
	"net/netip"
)

// Flow recovery. A switch that gets a segment of a connection it has no
// entry for sends LOOKUP to every agent with a ready control connection;
// each answers OWNERS, saying for each connection whether its host's
// kernel holds a socket for it and in which state. The switch splices the
// flow to the owner. The agents' kernels are the truth: a switch's flow
// table is only a cache of it, which a restarted switch, or one a router
// moved flows to, refills on demand.
//
// LOOKUP body: u8 family (4), u8 count n (1 to MaxLookup), then n entries
// of LookupEntryLen bytes: client address, client port, VIP, VIP port.
// OWNERS body: n entries of OwnerLen bytes, in the order asked: u8 state
// (SockState), u32 milliseconds since the socket last heard from the
// client (NoIdle when unknown).

// Sizes of the recovery messages.
const (
	MaxLookup      = 64 // connections per LOOKUP
	LookupEntryLen = 12
	lookupFixedLen = 2
	OwnerLen       = 5
)

// FlowID names a connection by its client's and its VIP's address and port.
type FlowID struct {
	Client, VIP netip.AddrPort
}

// AppendLookupBody appends a LOOKUP body asking for ids (1 to MaxLookup of
// them, IPv4) to dst. It does not allocate when dst has room. It returns
// ErrMalformed, and dst unchanged, for a count out of range or an address
// that is not IPv4.
func AppendLookupBody(dst []byte, ids []FlowID) ([]byte, error) {
	if len(ids) == 0 || len(ids) > MaxLookup {
		return dst, ErrMalformed
	}
	n := len(dst)
	dst = append(dst, familyIPv4, byte(len(ids)))
	be := binary.BigEndian
	for i := range ids {
		c, v := ids[i].Client.Addr().Unmap(), ids[i].VIP.Addr().Unmap()
		if !c.Is4() || !v.Is4() {
			return dst[:n], ErrMalformed
		}
		c4, v4 := c.As4(), v.As4()
		dst = append(dst, c4[:]...)
		dst = be.AppendUint16(dst, ids[i].Client.Port())
		dst = append(dst, v4[:]...)
		dst = be.AppendUint16(dst, ids[i].VIP.Port())
	}
	return dst, nil
}

// DecodeLookupBody appends the connections a LOOKUP body asks for to ids.
// It returns ErrTruncated for a body shorter than its count says, and
// ErrMalformed for an unknown family, a count of 0 or above MaxLookup, or
// trailing bytes.
func DecodeLookupBody(body []byte, ids []FlowID) ([]FlowID, error) {
	if len(body) < lookupFixedLen {
		return ids, ErrTruncated
	}
	n := int(body[1])
	switch {
	case body[0] != familyIPv4 || n == 0 || n > MaxLookup:
		return ids, ErrMalformed
	case len(body) < lookupFixedLen+n*LookupEntryLen:
		return ids, ErrTruncated
	case len(body) > lookupFixedLen+n*LookupEntryLen:
		return ids, ErrMalformed
	}
	be := binary.BigEndian
	for e := body[lookupFixedLen:]; len(e) > 0; e = e[LookupEntryLen:] {
		ids = append(ids, FlowID{
			Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte(e[0:4])), be.Uint16(e[4:])),
			VIP:    netip.AddrPortFrom(netip.AddrFrom4([4]byte(e[6:10])), be.Uint16(e[10:])),
		})
	}
	return ids, nil
}

// SockState is the state of a back-end's socket for a connection, as
// Linux numbers TCP states (include/net/tcp_states.h); SockNone: no
// socket.
type SockState uint8

// Socket states an OWNERS entry carries. LISTEN, SYN_SENT, SYN_RECV and
// CLOSE never do: a socket in those states owns no client connection.
const (
	SockNone        SockState = 0
	SockEstablished SockState = 1
	SockFinWait1    SockState = 4
	SockFinWait2    SockState = 5
	SockTimeWait    SockState = 6
	SockCloseWait   SockState = 8
	SockLastAck     SockState = 9
	SockClosing     SockState = 11
)

// NoIdle is the idle time of an owner that cannot tell (a TIME_WAIT
// socket keeps no TCP information).
const NoIdle = ^uint32(0)

// Owner is one entry of an OWNERS body.
type Owner struct {
	State  SockState
	IdleMS uint32 // since the socket last heard from the client; NoIdle: unknown
}

// Owns reports whether the entry names a socket.
func (o Owner) Owns() bool { return o.State != SockNone }

// Live reports whether the socket carries the connection, so that the
// client's segments must reach it: ESTABLISHED, CLOSE_WAIT (the client
// has closed, the server still sends) or FIN_WAIT1 (the server's last
// data or FIN is not acknowledged). A socket in a later closing state
// (FIN_WAIT2, LAST_ACK, CLOSING, TIME_WAIT) needs nothing more from the
// client, and may be left from an earlier connection on the same 4-tuple:
// a client that reuses the port must not be sent to it.
func (o Owner) Live() bool {
	switch o.State {
	case SockEstablished, SockCloseWait, SockFinWait1:
		return true
	}
	return false
}

// Rank orders the live owners of one connection when two hosts claim it:
// a socket that still sends (ESTABLISHED, CLOSE_WAIT) outranks one
// closing its side (FIN_WAIT1); between equals, the one that heard from
// the client last. Rank is 0 for a socket that is not Live.
func (o Owner) Rank() uint64 {
	var class uint64
	switch {
	case !o.Live():
		return 0
	case o.State == SockFinWait1:
		class = 1
	default:
		class = 2
	}
	return class<<32 | uint64(NoIdle-o.IdleMS)
}

// knownState reports whether s may appear in an OWNERS entry.
func knownState(s SockState) bool {
	switch s {
	case SockNone, SockEstablished, SockFinWait1, SockFinWait2, SockTimeWait, SockCloseWait, SockLastAck, SockClosing:
		return true
	}
	return false
}

// AppendOwner appends one OWNERS entry to dst.
func AppendOwner(dst []byte, o Owner) []byte {
	dst = append(dst, byte(o.State))
	return binary.BigEndian.AppendUint32(dst, o.IdleMS)
}

// CheckOwners checks an OWNERS body answering a LOOKUP of n connections:
// ErrMalformed for a body of another length or an unknown state. Read its
// entries with OwnerAt.
func CheckOwners(body []byte, n int) error {
	if len(body) != n*OwnerLen {
		return ErrMalformed
	}
	for i := 0; i < n; i++ {
		if !knownState(SockState(body[i*OwnerLen])) {
			return ErrMalformed
		}
	}
	return nil
}

// OwnerAt returns entry i of an OWNERS body that CheckOwners accepted.
func OwnerAt(body []byte, i int) Owner {
	e := body[i*OwnerLen:]
	return Owner{State: SockState(e[0]), IdleMS: binary.BigEndian.Uint32(e[1:])}
}
