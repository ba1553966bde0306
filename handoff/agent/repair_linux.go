package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"webswitch/handoff"
	"webswitch/internal/sys"
)

// Repair queue selectors for TCP_REPAIR_QUEUE (linux/tcp.h); x/sys/unix does
// not define them.
const (
	tcpNoQueue   = 0
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// tcpRepairWindow is struct tcp_repair_window (linux/tcp.h), the argument of
// TCP_REPAIR_WINDOW; x/sys/unix does not define it.
type tcpRepairWindow struct {
	sndWl1    uint32
	sndWnd    uint32
	maxWindow uint32
	rcvWnd    uint32
	rcvWup    uint32
}

var (
	errNotIPv4   = errors.New("repair: only IPv4 connections can be re-created")
	errNoMSS     = errors.New("repair: MSS is zero")
	errShortSend = errors.New("repair: request bytes not queued")
)

// Recreate re-creates in this host's kernel the connection the switch
// accepted, with TCP_REPAIR, puts request (the client bytes the switch
// acknowledged) into its receive queue, and returns it as a *net.TCPConn (as
// net.Conn) ready for a server. The socket is bound to st.VIP and connected to
// st.Client; no packet but one window probe is sent.
//
// The steps follow DESIGN.md section 6 in order; each failing system call is
// reported once with the step's name, and the socket is closed on every error.
// It needs CAP_NET_ADMIN in the socket's network namespace.
func Recreate(st *handoff.ConnState, request []byte) (net.Conn, error) {
	vip, client := st.VIP.Addr().Unmap(), st.Client.Addr().Unmap()
	if !vip.Is4() || !client.Is4() {
		return nil, errNotIPv4
	}
	if st.MSS == 0 {
		return nil, errNoMSS
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("repair: socket: %w", err)
	}
	if err := repair(fd, st, vip, client, request); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "repair "+st.VIP.String()+"-"+st.Client.String())
	c, err := net.FileConn(f) // dups the descriptor
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("repair: file conn: %w", err)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("repair: file conn is a %T, not a TCP connection", c)
	}
	if err := tc.SetNoDelay(true); err != nil {
		tc.Close()
		return nil, fmt.Errorf("repair: TCP_NODELAY: %w", err)
	}
	return tc, nil
}

// tuneControl gives an accepted control connection the short minimum
// retransmission timeout the switch's end has too (sys.ControlRTOMin).
func tuneControl(c net.Conn) {
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { sys.SetControlRTOMin(int(fd)) })
		}
	}
}

// repair runs the TCP_REPAIR sequence on fd, leaving it an established
// connection out of repair mode. The caller closes fd on error.
func repair(fd int, st *handoff.ConnState, vip, client netip.Addr, request []byte) error {
	tcpInt := func(step string, opt, val int) error {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, opt, val); err != nil {
			return fmt.Errorf("repair: %s: %w", step, err)
		}
		return nil
	}
	// 1. SO_REUSEADDR before TCP_REPAIR: repair mode forces reuse, and a
	// later SO_REUSEADDR would overwrite that.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("repair: SO_REUSEADDR: %w", err)
	}
	// 2. Repair mode, then bind to VIP:port.
	if err := tcpInt("TCP_REPAIR on", unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(st.VIP.Port()), Addr: vip.As4()}); err != nil {
		return fmt.Errorf("repair: bind %s: %w", st.VIP, err)
	}
	// 3. Sequence numbers: the next byte each side sends.
	if err := tcpInt("TCP_REPAIR_QUEUE send", unix.TCP_REPAIR_QUEUE, tcpSendQueue); err != nil {
		return err
	}
	// One byte early: see step 9.
	if err := tcpInt("TCP_QUEUE_SEQ send", unix.TCP_QUEUE_SEQ, int(int32(st.SndNxt-1))); err != nil {
		return err
	}
	if err := tcpInt("TCP_REPAIR_QUEUE recv", unix.TCP_REPAIR_QUEUE, tcpRecvQueue); err != nil {
		return err
	}
	if err := tcpInt("TCP_QUEUE_SEQ recv", unix.TCP_QUEUE_SEQ, int(int32(st.RcvIRS+1))); err != nil {
		return err
	}
	// 4. The client's MSS before connect, or the socket starts at 536 bytes.
	if err := tcpInt(fmt.Sprintf("TCP_MAXSEG %d", st.MSS), unix.TCP_MAXSEG, int(st.MSS)); err != nil {
		return err
	}
	// 5. connect sends nothing in repair mode: the socket is ESTABLISHED.
	// An earlier connection of the same 4-tuple in TIME_WAIT makes it fail
	// (EADDRNOTAVAIL): replace it as a SYN would have (timewait_linux.go).
	to := &unix.SockaddrInet4{Port: int(st.Client.Port()), Addr: client.As4()}
	err := unix.Connect(fd, to)
	if err == unix.EADDRNOTAVAIL {
		if kerr := killTimeWait(st.VIP, st.Client); errors.Is(kerr, ErrExists) {
			return fmt.Errorf("repair: connect %s: %w", st.Client, kerr)
		} else if kerr != nil {
			return fmt.Errorf("repair: connect %s: %w (%v)", st.Client, err, kerr)
		}
		err = unix.Connect(fd, to)
	}
	if err != nil {
		return fmt.Errorf("repair: connect %s: %w", st.Client, err)
	}
	// 6. Negotiated options. Without window scaling both scales are set to
	// 0: connect computed a receive scale from the buffer size that the
	// client, which never saw it, would not apply.
	opts := [3]unix.TCPRepairOpt{
		{Code: unix.TCPOPT_MAXSEG, Val: uint32(st.MSS)},
		{Code: unix.TCPOPT_WINDOW},
	}
	n := 2
	if st.WScaleOK {
		opts[1].Val = uint32(st.SndWScale) | uint32(st.RcvWScale)<<16
	}
	if st.SACKOK {
		opts[n] = unix.TCPRepairOpt{Code: unix.TCPOPT_SACK_PERMITTED}
		n++
	}
	if err := unix.SetsockoptTCPRepairOpt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_OPTIONS, opts[:n]); err != nil {
		return fmt.Errorf("repair: TCP_REPAIR_OPTIONS: %w", err)
	}
	// 7. With the receive queue selected, send queues into the receive queue.
	for p := request; len(p) > 0; {
		n, err := unix.SendmsgN(fd, p, nil, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("repair: queue %d request bytes: %w", len(p), err)
		}
		if n == 0 {
			return errShortSend
		}
		p = p[n:]
	}
	// 8. Leave queue mode; restore the windows, or the send window starts
	// at 0 and waits for the zero-window probe timer.
	if err := tcpInt("TCP_REPAIR_QUEUE none", unix.TCP_REPAIR_QUEUE, tcpNoQueue); err != nil {
		return err
	}
	w := tcpRepairWindow{
		sndWl1:    st.RcvNxt,
		sndWnd:    st.SndWnd,
		maxWindow: st.SndWnd,
		rcvWnd:    st.RcvWnd,
		rcvWup:    st.RcvNxt,
	}
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW,
		uintptr(unsafe.Pointer(&w)), unsafe.Sizeof(w), 0); e != 0 {
		return fmt.Errorf("repair: TCP_REPAIR_WINDOW: %w", e)
	}
	// 9. Out of repair mode, then a real RTT sample. A repaired socket has
	// none, so the kernel (tcp_init_metrics) starts it with a 3 s RTO
	// when it holds no metrics for the client: a lost first response
	// segment would stall for 3 s. So the send sequence starts one byte
	// early, at the ISN of the switch's SYN-ACK, and that byte, which the
	// client has already acknowledged, is sent for real: the client, which
	// acknowledges a duplicate at once (RFC 9293 3.10.7.4), gives an RTT
	// sample within one round trip. No window probe is needed: the byte
	// does its work. This must happen before the agent answers OK, so no
	// client segment (acknowledging ISN+1) reaches the socket while its
	// send sequence is still at ISN.
	if err := tcpInt("TCP_REPAIR off", unix.TCP_REPAIR, unix.TCP_REPAIR_OFF_NO_WP); err != nil {
		return err
	}
	if n, err := unix.Write(fd, []byte{0}); n != 1 {
		return fmt.Errorf("repair: sending the RTT probe byte: %d, %v", n, err)
	}
	return nil
}
