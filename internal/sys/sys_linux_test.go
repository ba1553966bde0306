package sys

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialTCPRTOMin checks that a control connection gets ControlRTOMin
// (on kernels that know TCP_RTO_MIN_US).
func TestDialTCPRTOMin(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fd, err := DialTCP(netip.MustParseAddrPort(l.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer Close(fd)
	us, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_RTO_MIN_US)
	if errors.Is(err, unix.ENOPROTOOPT) {
		t.Skip("this kernel has no TCP_RTO_MIN_US (Linux 6.15 and later)")
	}
	// The kernel keeps it in clock ticks: up to one tick (4 ms at HZ=250)
	// more than asked.
	if got := time.Duration(us) * time.Microsecond; err != nil || got < ControlRTOMin || got > ControlRTOMin+10*time.Millisecond {
		t.Errorf("TCP_RTO_MIN_US = %v, %v; want %v rounded up to a clock tick", got, err, ControlRTOMin)
	}
}
