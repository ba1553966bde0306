//go:build !linux

package ring

import (
	"net"
	"time"
)

// SockFilter is one classic BPF instruction (struct sock_filter).
type SockFilter struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// Ring is an AF_PACKET ring; there is none on this platform, and Open fails.
type Ring struct{}

// Open returns ErrUnsupported: AF_PACKET rings exist only on Linux.
func Open(Config) (*Ring, error) { return nil, ErrUnsupported }

// Close returns ErrUnsupported.
func (*Ring) Close() error { return ErrUnsupported }

// Fd returns -1.
func (*Ring) Fd() int { return -1 }

// HardwareAddr returns nil.
func (*Ring) HardwareAddr() net.HardwareAddr { return nil }

// Ifindex returns 0.
func (*Ring) Ifindex() int { return 0 }

// NextBlock reports no block.
func (*Ring) NextBlock() (*Block, bool) { return nil, false }

// Release does nothing.
func (*Ring) Release(*Block) {}

// Wait returns ErrUnsupported.
func (*Ring) Wait(time.Duration) error { return ErrUnsupported }

// Stats returns ErrUnsupported.
func (*Ring) Stats() (Stats, error) { return Stats{}, ErrUnsupported }

// Sender batches frames; there is none on this platform.
type Sender struct{}

// NewSender returns a Sender whose Flush fails.
func (*Ring) NewSender(int) *Sender { return &Sender{} }

// Add does nothing.
func (*Sender) Add([]byte) {}

// Buffer returns a buffer of n bytes.
func (*Sender) Buffer(n int) []byte { return make([]byte, n) }

// Flush returns ErrUnsupported.
func (*Sender) Flush() (int, error) { return 0, ErrUnsupported }

// Stats returns zero counters.
func (*Sender) Stats() SenderStats { return SenderStats{} }
