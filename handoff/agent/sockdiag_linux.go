package agent

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
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
