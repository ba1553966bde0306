package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"webswitch/handoff"
)

// The sock_diag wire (linux/sock_diag.h, linux/inet_diag.h): a request about
// one TCP socket by its 4-tuple, and the netlink messages that answer it.

// sock_diag message sizes and fields.
const (
	inetDiagReqV2Len = 56
	inetDiagMsgLen   = 72
	diagReqLen       = unix.NLMSG_HDRLEN + inetDiagReqV2Len // a request with its netlink header
	tcpTimeWait      = 6                                    // TCP_TIME_WAIT
	inetDiagNoCookie = 0xFFFFFFFF
)

var (
	errNetlinkMsg   = errors.New("malformed netlink message")
	errShortDiagMsg = errors.New("short inet_diag_msg")
)

// diagReq is a sock_diag request about the IPv4 TCP socket bound to local
// and connected to remote.
type diagReq struct {
	typ           uint16 // SOCK_DIAG_BY_FAMILY or SOCK_DESTROY
	flags         uint16 // netlink flags besides NLM_F_REQUEST
	seq           uint32
	ext           uint8 // idiag_ext: the attributes wanted in the answer
	local, remote netip.AddrPort
	cookie        [2]uint32 // the socket's; inetDiagNoCookie twice: any
}

// put writes r into b[:diagReqLen]: a netlink header and an
// inet_diag_req_v2. Both addresses must be IPv4.
func (r *diagReq) put(b []byte) {
	b = b[:diagReqLen]
	clear(b)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], diagReqLen)
	ne.PutUint16(b[4:], r.typ)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|r.flags)
	ne.PutUint32(b[8:], r.seq)
	q := b[unix.NLMSG_HDRLEN:]
	q[0], q[1], q[2] = unix.AF_INET, unix.IPPROTO_TCP, r.ext
	ne.PutUint32(q[4:], ^uint32(0)) // states: all (a lookup by 4-tuple ignores them)
	binary.BigEndian.PutUint16(q[8:], r.local.Port())
	binary.BigEndian.PutUint16(q[10:], r.remote.Port())
	src, dst := r.local.Addr().As4(), r.remote.Addr().As4()
	copy(q[12:16], src[:])
	copy(q[28:32], dst[:])
	ne.PutUint32(q[48:], r.cookie[0])
	ne.PutUint32(q[52:], r.cookie[1])
}

// nlMsg is one netlink message.
type nlMsg struct {
	typ  uint16
	seq  uint32
	data []byte // the payload after the header
}

// splitNlMsg returns the first netlink message of b and the bytes after it.
func splitNlMsg(b []byte) (nlMsg, []byte, error) {
	ne := binary.NativeEndian
	if len(b) < unix.NLMSG_HDRLEN {
		return nlMsg{}, nil, errNetlinkMsg
	}
	l := int(ne.Uint32(b))
	if l < unix.NLMSG_HDRLEN || l > len(b) {
		return nlMsg{}, nil, errNetlinkMsg
	}
	m := nlMsg{typ: ne.Uint16(b[4:]), seq: ne.Uint32(b[8:]), data: b[unix.NLMSG_HDRLEN:l]}
	return m, b[min(nlAlign(l), len(b)):], nil
}

// nlErrno returns the error number an NLMSG_ERROR payload carries; 0 is an
// acknowledgement.
func nlErrno(data []byte) (unix.Errno, error) {
	if len(data) < 4 {
		return 0, errNetlinkMsg
	}
	return unix.Errno(-int32(binary.NativeEndian.Uint32(data))), nil
}

// nlAlign rounds n up to the alignment of netlink messages and attributes.
func nlAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// Flow recovery asks the agent which of a batch of connections its host
// holds (handoff.MsgLookup). Diag asks the kernel, one exact lookup by
// 4-tuple per connection (inet_diag_find_one_icsk), all the lookups of a
// batch in one write on one NETLINK_SOCK_DIAG socket. The kernel answers
// them in order within that write, each with a message of the request's
// sequence number: an inet_diag_msg for a socket found, an NLMSG_ERROR
// ENOENT for none (no NLM_F_ACK is asked, so nothing else comes). So once
// the write returns, every answer is queued or the socket reports ENOBUFS:
// Diag reads without blocking, and an answer missing is an error, never a
// wait. The answers of a full batch take 80 KiB of receive buffer (1280
// bytes each with its tcp_info, on Linux 6.18); Diag asks for 256 KiB
// whatever net.core.rmem_default says (the kernel doubles SO_RCVBUF, within
// net.core.rmem_max: 208 KiB by default).

// Diag sizes and fields.
const (
	diagReadLen     = 8 << 10   // one answer is under 1 KiB
	diagRcvBuf      = 128 << 10 // SO_RCVBUF; the kernel doubles it
	inetDiagInfo    = 2         // INET_DIAG_INFO: the answer's tcp_info
	tcpiLastAckRecv = int(unsafe.Offsetof(unix.TCPInfo{}.Last_ack_recv))
)

var (
	errDiagBatch  = fmt.Errorf("sock_diag lookup: more than %d connections", handoff.MaxLookup)
	errDiagIPv4   = errors.New("sock_diag lookup: only IPv4 connections can be looked up")
	errDiagClosed = fmt.Errorf("sock_diag lookup: %w", net.ErrClosed)
	errDiagSeq    = errors.New("sock_diag lookup: an answer to no request of the batch")
)

// Diag looks up which connections this host's kernel holds, for flow
// recovery. It keeps one NETLINK_SOCK_DIAG socket, opened at the first
// Lookup; a batch that fails drops it (answers to that batch may still be
// queued) and the next Lookup opens another. It needs no privilege. It is
// safe for concurrent use: the batches of concurrent calls take turns.
type Diag struct {
	mu     sync.Mutex
	fd     int // -1: no socket
	closed bool
	req    [handoff.MaxLookup * diagReqLen]byte
	buf    [diagReadLen]byte
}

// NewDiag returns a Diag. Close it when done.
func NewDiag() *Diag { return &Diag{fd: -1} }

// Lookup appends to out the owner of each of ids (at most handoff.MaxLookup),
// in order: the state of the TCP socket of this host bound to id.VIP and
// connected to id.Client, and the milliseconds since it last heard from the
// client (tcp_info's tcpi_last_ack_recv; handoff.NoIdle for a socket kept in
// TIME_WAIT or as an orphaned FIN_WAIT2, which has no tcp_info). A
// connection with no socket gets handoff.Owner{}, and so does one whose
// lookup found a socket in LISTEN, SYN_SENT, SYN_RECV or CLOSE: the kernel's
// lookup falls back to the listener of id.VIP's port when no connected
// socket matches, and none of those owns a client connection.
//
// It returns out unchanged and an error for an id that is not IPv4, when
// the kernel did not answer every id, or after Close. It does not allocate
// once out has room.
func (d *Diag) Lookup(ids []handoff.FlowID, out []handoff.Owner) ([]handoff.Owner, error) {
	if len(ids) > handoff.MaxLookup {
		return out, errDiagBatch
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return out, errDiagClosed
	}
	if len(ids) == 0 {
		return out, nil
	}
	for i, id := range ids {
		local, remote := id.VIP.Addr().Unmap(), id.Client.Addr().Unmap()
		if !local.Is4() || !remote.Is4() {
			return out, errDiagIPv4
		}
		r := diagReq{
			typ:    unix.SOCK_DIAG_BY_FAMILY,
			seq:    uint32(i),
			ext:    1 << (inetDiagInfo - 1),
			local:  id.VIP,
			remote: id.Client,
			cookie: [2]uint32{inetDiagNoCookie, inetDiagNoCookie},
		}
		r.put(d.req[i*diagReqLen:])
	}
	if d.fd < 0 {
		fd, err := openDiag()
		if err != nil {
			return out, err
		}
		d.fd = fd
	}
	n := len(out)
	out = slices.Grow(out, len(ids))[:n+len(ids)]
	if err := d.exchange(d.req[:len(ids)*diagReqLen], out[n:]); err != nil {
		unix.Close(d.fd)
		d.fd = -1
		return out[:n], err
	}
	return out, nil
}

// openDiag opens a non-blocking NETLINK_SOCK_DIAG socket with room for the
// answers of a full batch.
func openDiag() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("sock_diag socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, diagRcvBuf); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("sock_diag socket: SO_RCVBUF: %w", err)
	}
	return fd, nil
}

// exchange writes the requests of a batch and reads their answers into
// owners; the sequence number of a request is its index in owners. A
// message left from an earlier batch (there is none: a batch reads every
// answer, and one that fails drops the socket) would make one request
// answered twice: an error, never a wrong owner.
func (d *Diag) exchange(req []byte, owners []handoff.Owner) error {
	if _, err := unix.Write(d.fd, req); err != nil {
		return fmt.Errorf("sock_diag lookup: write: %w", err)
	}
	var answered uint64 // bit i: owners[i] is set
	all := uint64(1)<<len(owners) - 1
	for answered != all {
		n, err := unix.Read(d.fd, d.buf[:])
		if err != nil {
			// EAGAIN: an answer the kernel should have queued during the
			// write is missing; ENOBUFS: answers were dropped.
			return fmt.Errorf("sock_diag lookup: %d of %d answers: %w", bits.OnesCount64(answered), len(owners), err)
		}
		for b := d.buf[:n]; len(b) > 0; {
			var m nlMsg
			if m, b, err = splitNlMsg(b); err != nil {
				return err
			}
			if m.seq >= uint32(len(owners)) || answered&(1<<m.seq) != 0 {
				return errDiagSeq
			}
			answered |= 1 << m.seq
			if owners[m.seq], err = ownerOf(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// ownerOf reads the owner from the answer to one lookup.
func ownerOf(m nlMsg) (handoff.Owner, error) {
	switch m.typ {
	case unix.SOCK_DIAG_BY_FAMILY:
		return diagOwner(m.data)
	case unix.NLMSG_ERROR:
		e, err := nlErrno(m.data)
		if err == nil && e != unix.ENOENT {
			err = fmt.Errorf("sock_diag lookup: %w", e)
		}
		return handoff.Owner{}, err
	}
	return handoff.Owner{}, errNetlinkMsg
}

// diagOwner reads the owner from an inet_diag_msg and its attributes.
func diagOwner(msg []byte) (handoff.Owner, error) {
	if len(msg) < inetDiagMsgLen {
		return handoff.Owner{}, errShortDiagMsg
	}
	o := handoff.Owner{State: ownerState(msg[1]), IdleMS: handoff.NoIdle}
	if !o.Owns() {
		return handoff.Owner{}, nil
	}
	ne := binary.NativeEndian
	for a := msg[inetDiagMsgLen:]; len(a) > 0; {
		if len(a) < unix.SizeofRtAttr {
			return handoff.Owner{}, errNetlinkMsg
		}
		l := int(ne.Uint16(a))
		if l < unix.SizeofRtAttr || l > len(a) {
			return handoff.Owner{}, errNetlinkMsg
		}
		if ne.Uint16(a[2:]) == inetDiagInfo && l >= unix.SizeofRtAttr+tcpiLastAckRecv+4 {
			o.IdleMS = ne.Uint32(a[unix.SizeofRtAttr+tcpiLastAckRecv:])
		}
		a = a[min(nlAlign(l), len(a)):]
	}
	return o, nil
}

// ownerState maps the state of the socket a lookup found to the owner's:
// a state in which a socket holds a client connection is itself (handoff
// numbers the states as Linux does); the others hold none: LISTEN (the
// lookup's fallback), SYN_SENT, SYN_RECV (a request socket), CLOSE, and
// the states of later kernels.
func ownerState(s uint8) handoff.SockState {
	switch st := handoff.SockState(s); st {
	case handoff.SockEstablished, handoff.SockFinWait1, handoff.SockFinWait2, handoff.SockTimeWait,
		handoff.SockCloseWait, handoff.SockLastAck, handoff.SockClosing:
		return st
	}
	return handoff.SockNone
}

// Close closes the socket; Lookup fails after it.
func (d *Diag) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}
