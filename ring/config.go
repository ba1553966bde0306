package ring

import (
	"errors"
	"fmt"
	"time"
)

// Config describes one receive ring and its socket. The zero value of every
// optional field means "default" or "off".
type Config struct {
	Interface string // the interface to bind to (required)

	// Version picks the kind of receive ring; 0 means DefaultVersion. 3:
	// TPACKET_V3, a ring of blocks that the kernel packs with frames and
	// hands to user space only when a block is full or its BlockTimeout (at
	// least 1 ms) expires: few wake-ups and dense memory, but a lone frame
	// (a request, an ACK a sender's congestion control waits for) waits up
	// to BlockTimeout. 2: TPACKET_V2, a ring of fixed-size slots, one frame
	// each, which the kernel hands over as soon as it is written, waking
	// poll(2) for every frame: low latency, paid with one wake-up per frame
	// under light load and with memory, since every slot must hold the
	// largest frame (see FrameSize).
	Version int

	// BlockSize is the V3 block size in bytes: a power of two, multiple of
	// the page size (default 256 KiB); it must exceed the largest frame, 64
	// KiB GSO super-frames included, or frames are truncated. V2 ignores it.
	BlockSize int
	// NumBlocks is the number of V3 blocks, or of V2 slots (frames the ring
	// holds) (default 16 for both). A V2 ring needs more slots than a V3 ring
	// needs blocks: in this package's 4 MiB upload test 16 slots dropped a
	// few frames now and then, 64 did not.
	NumBlocks int
	// FrameSize is, for V3, the tp_frame_size hint, a multiple of 16 (default
	// 2048). For V2 it is the room for one frame, a multiple of 16 (default
	// DefaultV2FrameSize, which holds the largest IPv4 GSO super-frame); each
	// slot is FrameSize rounded up to whole pages, one TPACKET_V2 block of
	// one frame (the kernel only needs page-aligned blocks, not a power of
	// two, but allocates each as a power of two of pages: 128 KiB per slot
	// with the default). A frame that does not fit is cut by the kernel and
	// skipped by the ring (Stats.Truncated).
	FrameSize int
	// BlockTimeout is the V3 block retire timeout, rounded up to whole
	// milliseconds (default 1ms). V2 ignores it.
	BlockTimeout time.Duration

	FanoutGroup uint16       // PACKET_FANOUT_HASH group to join (fragments are not reassembled); 0: no fanout
	Filter      []SockFilter // classic BPF program attached before binding (see FilterTCPToAddr); nil: none. It must accept whole frames: a frame it cuts short counts as truncated and is skipped
	VnetHdr     bool         // PACKET_VNET_HDR: virtio-net header before every frame, received and sent
	QdiscBypass bool         // PACKET_QDISC_BYPASS: transmit straight to the driver
}

// Defaults used for zero Config fields.
const (
	// DefaultVersion is TPACKET_V2, and conf's switch.ring_version default:
	// a lone frame waits up to a V3 block's retire timeout, which cut the
	// switch's keep-alive throughput about fourfold (docs/performance.md).
	DefaultVersion = 2

	DefaultBlockSize    = 256 << 10
	DefaultNumBlocks    = 16
	DefaultFrameSize    = 2048
	DefaultBlockTimeout = time.Millisecond

	// DefaultV2FrameSize holds the largest frame tpacket_rcv can write for
	// an IPv4 packet of 65535 bytes (a GSO or GRO super-frame): the
	// tpacket2_hdr (32 bytes) and sockaddr_ll (20) padded together with the
	// MAC header (up to 18 bytes with a VLAN tag) to 80 bytes, the
	// virtio-net header (10), then the packet: 90 + 65535 = 65625, rounded
	// up to a multiple of 16.
	DefaultV2FrameSize = 65536 + 96
)

// withDefaults returns c with zero fields replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.Version == 0 {
		c.Version = DefaultVersion
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.NumBlocks == 0 {
		c.NumBlocks = DefaultNumBlocks
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
		if c.Version == 2 {
			c.FrameSize = DefaultV2FrameSize
		}
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	return c
}

// check validates c (after withDefaults) for a page size.
func (c Config) check(pageSize int) error {
	v3 := c.Version == 3
	switch {
	case c.Interface == "":
		return fmt.Errorf("%w: no interface", ErrBadConfig)
	case c.Version != 2 && !v3:
		return fmt.Errorf("%w: ring version %d is neither 2 nor 3", ErrBadConfig, c.Version)
	case v3 && (c.BlockSize <= 0 || c.BlockSize&(c.BlockSize-1) != 0 || c.BlockSize%pageSize != 0):
		return fmt.Errorf("%w: block size is not a power of two multiple of the page size", ErrBadConfig)
	case c.NumBlocks <= 0:
		return fmt.Errorf("%w: no blocks", ErrBadConfig)
	case c.FrameSize <= 0 || c.FrameSize%16 != 0 || v3 && c.FrameSize > c.BlockSize:
		return fmt.Errorf("%w: frame size is not a positive multiple of 16 (within the V3 block size)", ErrBadConfig)
	case c.BlockTimeout < 0:
		return fmt.Errorf("%w: negative block timeout", ErrBadConfig)
	case c.Filter != nil && (len(c.Filter) == 0 || len(c.Filter) > 0xffff):
		return fmt.Errorf("%w: filter of %d instructions", ErrBadConfig, len(c.Filter))
	}
	return nil
}

// slotSize returns the size of a V2 slot: FrameSize rounded up to whole pages.
func (c Config) slotSize(pageSize int) int {
	return (c.FrameSize + pageSize - 1) / pageSize * pageSize
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
	Packets   uint64 // frames that passed the filter (delivered or dropped)
	Drops     uint64 // frames dropped because the ring was full
	Freezes   uint64 // times the ring froze because user space held every block (V3 only)
	Corrupt   uint64 // blocks in which the walk met a malformed frame header
	Truncated uint64 // frames skipped because the kernel cut them to fit the ring (tp_snaplen < tp_len)
}

// SenderStats counts a Sender's work since it was created.
type SenderStats struct {
	Sent    uint64 // frames the kernel accepted
	Calls   uint64 // sendmmsg(2) calls
	Retries uint64 // sendmmsg(2) calls made again after a wait for room (EAGAIN, ENOBUFS)
	Again   uint64 // frames dropped on EAGAIN/EWOULDBLOCK (socket buffer full)
	NoBufs  uint64 // frames dropped on ENOBUFS (device queue full)
	MsgSize uint64 // frames refused with EMSGSIZE (too large for the device)
	Other   uint64 // frames refused with any other error
}
