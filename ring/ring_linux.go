package ring

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SockFilter is one classic BPF instruction (struct sock_filter).
type SockFilter = unix.SockFilter

// Ring is an AF_PACKET socket bound to one interface for IPv4 frames, with a
// TPACKET_V3 or TPACKET_V2 receive ring (Config.Version). NextBlock, Release,
// Wait, Close and the Senders belong to one goroutine; Stats, Fd,
// HardwareAddr and Ifindex may be called from any.
type Ring struct {
	fd        int
	mem       []byte    // the mmapped ring
	slots     *slotRing // the V2 ring; nil for V3
	blocks    []Block   // V3: one view per block, reused
	blockSize int       // V3
	cur       int       // V3: next block to hand out
	vnet      bool
	ifindex   int
	hw        net.HardwareAddr
	pfd       [1]unix.PollFd

	corrupt   atomic.Uint64 // blocks released with Corrupt set
	truncated atomic.Uint64 // truncated frames skipped in released blocks

	mu     sync.Mutex // guards total and closed
	total  Stats      // kernel counters summed since Open
	closed bool
}

// htons converts a 16-bit value to network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return ne.Uint16(b[:])
}

// Open creates the socket, attaches the filter, maps the ring, binds to the
// interface and joins the fanout group, in that order so that no unfiltered
// frame and no frame from another interface reaches the ring.
func Open(cfg Config) (*Ring, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(os.Getpagesize()); err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("ring: interface %q: %w", cfg.Interface, err)
	}
	// Protocol 0: the socket receives nothing until bind names ETH_P_IP.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("ring: socket AF_PACKET: %w", err)
	}
	r := &Ring{fd: fd, blockSize: cfg.BlockSize, vnet: cfg.VnetHdr, ifindex: ifi.Index, hw: ifi.HardwareAddr}
	if err := r.setup(cfg); err != nil {
		r.release()
		return nil, err
	}
	r.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	return r, nil
}

// setup configures the socket of a new ring; the caller frees it on error.
func (r *Ring) setup(cfg Config) error {
	fd := r.fd
	if cfg.Filter != nil {
		prog := unix.SockFprog{Len: uint16(len(cfg.Filter)), Filter: &cfg.Filter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			return fmt.Errorf("ring: setsockopt SO_ATTACH_FILTER: %w", err)
		}
	}
	version := unix.TPACKET_V3
	if cfg.Version == 2 {
		version = unix.TPACKET_V2
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, version); err != nil {
		return fmt.Errorf("ring: setsockopt PACKET_VERSION: %w", err)
	}
	if cfg.VnetHdr { // must come before the ring
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return fmt.Errorf("ring: setsockopt PACKET_VNET_HDR: %w", err)
		}
	}
	if cfg.QdiscBypass {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("ring: setsockopt PACKET_QDISC_BYPASS: %w", err)
		}
	}
	if err := r.mapRing(cfg); err != nil {
		return err
	}
	sa := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: r.ifindex}
	if err := unix.Bind(fd, &sa); err != nil {
		return fmt.Errorf("ring: bind %s: %w", cfg.Interface, err)
	}
	if cfg.FanoutGroup != 0 {
		// No PACKET_FANOUT_FLAG_DEFRAG: it would make the switch's kernel
		// reassemble fragments (memory an attacker fills) and hide them;
		// the shards drop and count every IPv4 fragment instead.
		arg := int(cfg.FanoutGroup) | unix.PACKET_FANOUT_HASH<<16
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg); err != nil {
			return fmt.Errorf("ring: setsockopt PACKET_FANOUT: %w", err)
		}
	}
	return nil
}

// mapRing creates the receive ring and maps it. A V3 ring has NumBlocks
// blocks of BlockSize bytes. A V2 ring has NumBlocks slots, each one block
// holding one frame of a whole number of pages (tp_frame_size =
// tp_block_size): packet_set_ring requires only that tp_block_size be a
// positive multiple of the page size, tp_frame_size a multiple of
// TPACKET_ALIGNMENT (16) no smaller than the headers and at most the block
// size, and tp_frame_nr = tp_block_nr * (tp_block_size / tp_frame_size).
func (r *Ring) mapRing(cfg Config) error {
	fd := r.fd
	var err error
	size, slot := cfg.BlockSize*cfg.NumBlocks, cfg.slotSize(os.Getpagesize())
	if cfg.Version == 2 {
		size = slot * cfg.NumBlocks
		req := unix.TpacketReq{Block_size: uint32(slot), Block_nr: uint32(cfg.NumBlocks), Frame_size: uint32(slot), Frame_nr: uint32(cfg.NumBlocks)}
		err = unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req)
	} else {
		tov := (cfg.BlockTimeout + time.Millisecond - 1) / time.Millisecond
		req := unix.TpacketReq3{
			Block_size:     uint32(cfg.BlockSize),
			Block_nr:       uint32(cfg.NumBlocks),
			Frame_size:     uint32(cfg.FrameSize),
			Frame_nr:       uint32(cfg.BlockSize / cfg.FrameSize * cfg.NumBlocks),
			Retire_blk_tov: uint32(max(tov, 1)),
		}
		err = unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req)
	}
	if err != nil {
		return fmt.Errorf("ring: setsockopt PACKET_RX_RING: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("ring: mmap: %w", err)
	}
	r.mem = mem
	if cfg.Version == 2 {
		r.slots = newSlotRing(mem, slot, cfg.NumBlocks, cfg.VnetHdr)
		return nil
	}
	r.blocks = make([]Block, cfg.NumBlocks)
	for i := range r.blocks {
		r.blocks[i].idx = i
	}
	return nil
}

// release unmaps the ring and closes the socket.
func (r *Ring) release() error {
	var err error
	if r.mem != nil {
		err = unix.Munmap(r.mem)
		r.mem = nil
	}
	if cerr := unix.Close(r.fd); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ring: close: %w", err)
	}
	return nil
}

// Close unmaps the ring and closes the socket. Frames and blocks of the ring
// must not be used afterwards. Closing twice returns ErrClosed.
func (r *Ring) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	r.closed = true
	return r.release()
}

// Fd returns the socket, for poll(2) together with other descriptors: it is
// readable when a block (V3) or a frame (V2) is ready.
func (r *Ring) Fd() int { return r.fd }

// HardwareAddr returns the MAC address of the interface.
func (r *Ring) HardwareAddr() net.HardwareAddr { return r.hw }

// Ifindex returns the index of the interface.
func (r *Ring) Ifindex() int { return r.ifindex }

// statusWord returns the block_status word of V3 block i, shared with the
// kernel.
func (r *Ring) statusWord(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[i*r.blockSize+bdBlockStatus]))
}

// NextBlock returns the next block the kernel handed to user space, or
// ok=false if it has none ready (it does not block: wait with Wait or poll on
// Fd). In V2 a block is the run of consecutive frames ready at the ring's
// cursor, at most 64. Blocks come in ring order; several may be held at once,
// and each must be given back with Release. It never allocates.
func (r *Ring) NextBlock() (b *Block, ok bool) {
	if !r.ready() {
		return nil, false
	}
	if r.slots != nil {
		return r.slots.next()
	}
	b = &r.blocks[r.cur]
	start, end := r.cur*r.blockSize, (r.cur+1)*r.blockSize
	b.reset(r.mem[start:end:end], r.vnet)
	b.held = true
	r.cur++
	if r.cur == len(r.blocks) {
		r.cur = 0
	}
	return b, true
}

// ready reports whether the next block (V3) or slot (V2) is in user space and
// not yet handed out.
func (r *Ring) ready() bool {
	switch {
	case r.mem == nil:
		return false
	case r.slots != nil:
		return r.slots.ready(r.slots.cur)
	}
	return !r.blocks[r.cur].held && atomic.LoadUint32(r.statusWord(r.cur))&tpStatusUser != 0
}

// Release gives b back to the kernel. Its frames must not be used afterwards,
// so flush any Sender holding them first.
func (r *Ring) Release(b *Block) {
	if !b.held || r.mem == nil {
		return
	}
	if b.corrupt {
		r.corrupt.Add(1)
	}
	if b.truncated != 0 {
		r.truncated.Add(uint64(b.truncated))
	}
	if r.slots != nil {
		r.slots.release(b)
		return
	}
	b.held = false
	b.mem = nil
	atomic.StoreUint32(r.statusWord(b.idx), tpStatusKernel)
}

// Wait blocks until a block is ready (nil) or timeout elapses (ErrTimeout); a
// negative timeout waits forever. Signals (EINTR) do not end the wait. It is
// meant to be called with every block released: while the next block is
// held, the ring cannot advance.
func (r *Ring) Wait(timeout time.Duration) error {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		if r.ready() {
			return nil
		}
		if r.mem == nil {
			return ErrClosed
		}
		ms := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return ErrTimeout
			}
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		if _, err := unix.Poll(r.pfd[:], ms); err != nil && err != unix.EINTR {
			return fmt.Errorf("ring: poll: %w", err)
		}
	}
}

// Stats returns the kernel's counters summed since Open (the kernel resets
// them on every read, so the ring accumulates them).
func (r *Ring) Stats() (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return Stats{}, ErrClosed
	}
	st, err := r.kernelStats()
	if err != nil {
		return Stats{}, fmt.Errorf("ring: getsockopt PACKET_STATISTICS: %w", err)
	}
	r.total.Packets += uint64(st.Packets)
	r.total.Drops += uint64(st.Drops)
	r.total.Freezes += uint64(st.Freeze_q_cnt)
	out := r.total
	out.Corrupt = r.corrupt.Load()
	out.Truncated = r.truncated.Load()
	return out, nil
}

// kernelStats reads the kernel's counters, which resets them. A V2 socket
// reports a struct tpacket_stats, without a freeze count.
func (r *Ring) kernelStats() (*unix.TpacketStatsV3, error) {
	if r.slots == nil {
		return unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	}
	st, err := unix.GetsockoptTpacketStats(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return nil, err
	}
	return &unix.TpacketStatsV3{Packets: st.Packets, Drops: st.Drops}, nil
}
