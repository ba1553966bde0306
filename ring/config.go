package ring

import (
	"errors"
	"fmt"
	"time"
)

// Config describes one receive ring and its socket. The zero value of every
// optional field means "default" or "off".
type Config struct {
	Interface    string        // the interface to bind to (required)
	BlockSize    int           // bytes, power of two, multiple of the page size (default 256 KiB); must exceed the largest frame, 64 KiB GSO super-frames included, or frames are truncated
	NumBlocks    int           // blocks in the ring (default 16)
	FrameSize    int           // tp_frame_size hint, multiple of 16 (default 2048)
	BlockTimeout time.Duration // block retire timeout, rounded up to whole milliseconds (default 1ms)
	FanoutGroup  uint16        // PACKET_FANOUT_HASH|PACKET_FANOUT_FLAG_DEFRAG group to join; 0: no fanout
	Filter       []SockFilter  // classic BPF program attached before binding (see FilterTCPToAddr); nil: none
	VnetHdr      bool          // PACKET_VNET_HDR: virtio-net header before every frame, received and sent
	QdiscBypass  bool          // PACKET_QDISC_BYPASS: transmit straight to the driver
}

// Defaults used for zero Config fields.
const (
	DefaultBlockSize    = 256 << 10
	DefaultNumBlocks    = 16
	DefaultFrameSize    = 2048
	DefaultBlockTimeout = time.Millisecond
)

// withDefaults returns c with zero fields replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.NumBlocks == 0 {
		c.NumBlocks = DefaultNumBlocks
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	return c
}

// check validates c (after withDefaults) for a page size.
func (c Config) check(pageSize int) error {
	switch {
	case c.Interface == "":
		return fmt.Errorf("%w: no interface", ErrBadConfig)
	case c.BlockSize <= 0 || c.BlockSize&(c.BlockSize-1) != 0 || c.BlockSize%pageSize != 0:
		return fmt.Errorf("%w: block size is not a power of two multiple of the page size", ErrBadConfig)
	case c.NumBlocks <= 0:
		return fmt.Errorf("%w: no blocks", ErrBadConfig)
	case c.FrameSize <= 0 || c.FrameSize%16 != 0 || c.FrameSize > c.BlockSize:
		return fmt.Errorf("%w: frame size is not a multiple of 16 within the block size", ErrBadConfig)
	case c.BlockTimeout < 0:
		return fmt.Errorf("%w: negative block timeout", ErrBadConfig)
	case c.Filter != nil && (len(c.Filter) == 0 || len(c.Filter) > 0xffff):
		return fmt.Errorf("%w: filter of %d instructions", ErrBadConfig, len(c.Filter))
	}
	return nil
}

// Sentinel errors.
var (
	ErrBadConfig   = errors.New("ring: invalid config")
	ErrTimeout     = errors.New("ring: wait timed out")
	ErrClosed      = errors.New("ring: closed")
	ErrUnsupported = errors.New("ring: AF_PACKET rings need Linux")
)

// Stats are the kernel's counters for the socket (PACKET_STATISTICS), summed
// since Open, plus the ring's own.
type Stats struct {
	Packets uint64 // frames that passed the filter (delivered or dropped)
	Drops   uint64 // frames dropped because the ring was full
	Freezes uint64 // times the ring froze because user space held every block
	Corrupt uint64 // blocks whose walk stopped at a malformed frame header
}

// SenderStats counts a Sender's work since it was created.
type SenderStats struct {
	Sent    uint64 // frames the kernel accepted
	Calls   uint64 // sendmmsg(2) calls
	Again   uint64 // frames dropped on EAGAIN/EWOULDBLOCK (socket buffer full)
	NoBufs  uint64 // frames dropped on ENOBUFS (device queue full)
	MsgSize uint64 // frames refused with EMSGSIZE (too large for the device)
	Other   uint64 // frames refused with any other error
}
