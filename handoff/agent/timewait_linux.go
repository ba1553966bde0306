package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// A client that opens a new connection per request soon reuses a port. The
// back-end closed the previous connection on that port first, so its kernel
// still holds it in TIME_WAIT, and connect of the re-created socket fails:
// without TCP timestamps the kernel cannot tell the new connection from an
// old duplicate. A SYN to that TIME_WAIT socket would have replaced it (RFC
// 9293 3.6.1 and Linux's TCP_TW_SYN); the switch has just completed that
// handshake for a connection that is new by its cookie, so the agent does
// what the kernel would: it destroys the TIME_WAIT socket (sock_diag
// SOCK_DESTROY, as `ss -K` does) and connects again. Only a socket in
// TIME_WAIT is destroyed, identified by its cookie.

// ErrExists is returned (wrapped) by Recreate when this host already
// holds a socket, not in TIME_WAIT, for the connection's 4-tuple: a
// switch handed the same connection off twice (handoff.ErrCodeExists).
var ErrExists = errors.New("the connection's 4-tuple is held by a socket that is not in TIME_WAIT")

// killTimeWait destroys the TIME_WAIT socket of local-remote. It returns
// nil only if there was one and it is gone.
func killTimeWait(local, remote netip.AddrPort) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	// Look the socket up by its 4-tuple: its state and cookie.
	msg, err := sockDiag(fd, unix.SOCK_DIAG_BY_FAMILY, local, remote, [2]uint32{inetDiagNoCookie, inetDiagNoCookie})
	if err != nil {
		return fmt.Errorf("sock_diag lookup: %w", err)
	}
	if len(msg) < inetDiagMsgLen {
		return errors.New("sock_diag lookup: no answer")
	}
	if msg[1] != tcpTimeWait {
		return ErrExists
	}
	cookie := [2]uint32{binary.NativeEndian.Uint32(msg[44:]), binary.NativeEndian.Uint32(msg[48:])}
	if _, err := sockDiag(fd, unix.SOCK_DESTROY, local, remote, cookie); err != nil {
		return fmt.Errorf("sock_diag destroy: %w", err)
	}
	return nil
}

// sockDiag sends one inet_diag request for the TCP socket local-remote and
// returns the inet_diag_msg of the answer (SOCK_DIAG_BY_FAMILY) or nil
// (an acknowledged SOCK_DESTROY).
func sockDiag(fd int, typ uint16, local, remote netip.AddrPort, cookie [2]uint32) ([]byte, error) {
	var req [diagReqLen]byte
	r := diagReq{typ: typ, flags: unix.NLM_F_ACK, seq: 1, local: local, remote: remote, cookie: cookie}
	r.put(req[:])
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var buf [4096]byte
	var answer []byte
	for {
		n, _, err := unix.Recvfrom(fd, buf[:], 0)
		if err != nil {
			return nil, err
		}
		for b := buf[:n]; len(b) > 0; {
			var m nlMsg
			if m, b, err = splitNlMsg(b); err != nil {
				return nil, err
			}
			switch m.typ {
			case unix.NLMSG_ERROR:
				e, err := nlErrno(m.data)
				if err != nil {
					return nil, err
				}
				if e != 0 {
					return nil, e
				}
				return answer, nil // the ACK ends the exchange
			case unix.SOCK_DIAG_BY_FAMILY:
				if len(m.data) < inetDiagMsgLen {
					return nil, errShortDiagMsg
				}
				answer = append([]byte(nil), m.data[:inetDiagMsgLen]...)
			}
		}
	}
}
