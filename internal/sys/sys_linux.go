// Package sys is the small kernel surface the shard loop needs besides the
// ring: poll(2) over several descriptors, non-blocking TCP sockets for the
// control connections, and CPU affinity. Errors are wrapped once here with
// the operation's name.
package sys

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// PollFd is one descriptor to poll.
type PollFd = unix.PollFd

// Poll events.
const (
	PollIn  = unix.POLLIN
	PollOut = unix.POLLOUT
	PollErr = unix.POLLERR | unix.POLLHUP | unix.POLLNVAL
)

// Poll waits for events on fds for at most timeout; EINTR counts as a
// timeout.
func Poll(fds []PollFd, timeout time.Duration) (int, error) {
	n, err := unix.Poll(fds, int(timeout/time.Millisecond))
	if errors.Is(err, unix.EINTR) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("poll: %w", err)
	}
	return n, nil
}

// PinToCPU binds the calling OS thread to cpu (call it after
// runtime.LockOSThread).
func PinToCPU(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity cpu %d: %w", cpu, err)
	}
	return nil
}

// DialTCP starts a non-blocking connect to addr. The connection is
// established when the descriptor polls writable and SocketError is nil.
func DialTCP(addr netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	SetControlRTOMin(fd)
	sa := &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", addr, err)
	}
	return fd, nil
}

// SocketError returns the pending error of a socket (SO_ERROR).
func SocketError(fd int) error {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return fmt.Errorf("getsockopt SO_ERROR: %w", err)
	}
	if v != 0 {
		return unix.Errno(v)
	}
	return nil
}

// Read reads from a non-blocking descriptor; it returns 0, nil when there is
// nothing to read, and io.EOF-like ErrClosed when the peer closed.
func Read(fd int, b []byte) (int, error) {
	n, err := unix.Read(fd, b)
	switch {
	case errors.Is(err, unix.EAGAIN):
		return 0, nil
	case err != nil:
		return 0, err
	case n == 0 && len(b) > 0:
		return 0, ErrClosed
	}
	return n, nil
}

// Write writes to a non-blocking descriptor; it returns 0, nil when the
// socket buffer is full.
func Write(fd int, b []byte) (int, error) {
	n, err := unix.Write(fd, b)
	if errors.Is(err, unix.EAGAIN) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Close closes a descriptor.
func Close(fd int) error { return unix.Close(fd) }

// ErrClosed is returned by Read when the peer closed the connection.
var ErrClosed = errors.New("connection closed by peer")

// ControlRTOMin is the minimum retransmission timeout of the control
// connections between the switch and the agents. A HANDOFF or its OK lost
// on the LAN then costs about this much instead of the kernel's 200 ms
// minimum; under 5% loss that took 5 to 10% of handoffs past 200 ms.
const ControlRTOMin = 10 * time.Millisecond

// SetControlRTOMin sets ControlRTOMin on a control socket (TCP_RTO_MIN_US,
// Linux 6.15 and later). An older kernel refuses the option and keeps its
// default, so the error only matters to tests.
func SetControlRTOMin(fd int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_RTO_MIN_US, int(ControlRTOMin/time.Microsecond))
}
