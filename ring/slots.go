package ring

import (
	"sync/atomic"
	"unsafe"
)

// Layout of struct tpacket2_hdr (linux/if_packet.h), at the start of every
// slot of a V2 ring; the layout test checks it against x/sys/unix.
const (
	f2Status    = 0  // u32 tp_status
	f2Len       = 4  // u32 tp_len
	f2Snaplen   = 8  // u32 tp_snaplen
	f2Mac       = 12 // u16 tp_mac
	f2HeaderLen = 32 // sizeof(struct tpacket2_hdr)
)

// maxBlockFrames bounds the slots of one V2 Block, so that a caller flushing
// its Sender once per block does so at least every maxBlockFrames frames.
const maxBlockFrames = 64

// slotRing is the user-space side of a TPACKET_V2 receive ring: len(held)
// slots of size bytes in mem, one frame each, each starting with its
// tpacket2_hdr whose tp_status word says who owns the slot. It hands out runs
// of ready slots as Blocks, in ring order, and gives them back on release.
type slotRing struct {
	mem    []byte
	size   int     // bytes per slot
	cur    int     // next slot to hand out
	held   []bool  // slots handed out in a Block and not yet released
	blocks []Block // one view per first slot, reused
}

// newSlotRing returns the walker over n slots of size bytes in mem, whose
// frames are preceded by a virtio-net header if vnet.
func newSlotRing(mem []byte, size, n int, vnet bool) *slotRing {
	s := &slotRing{mem: mem, size: size, held: make([]bool, n), blocks: make([]Block, n)}
	for i := range s.blocks {
		s.blocks[i] = Block{slots: s, vnet: vnet, idx: i}
	}
	return s
}

// wrap returns slot number i, less than twice the ring size, modulo the ring
// size.
func (s *slotRing) wrap(i int) int {
	if i >= len(s.held) {
		i -= len(s.held)
	}
	return i
}

// slot returns the memory of slot i.
func (s *slotRing) slot(i int) []byte {
	start, end := i*s.size, (i+1)*s.size
	return s.mem[start:end:end]
}

// status returns the tp_status word of slot i, shared with the kernel.
func (s *slotRing) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&s.mem[i*s.size+f2Status]))
}

// ready reports whether slot i is filled for user space and not handed out.
func (s *slotRing) ready(i int) bool {
	return !s.held[i] && atomic.LoadUint32(s.status(i))&tpStatusUser != 0
}

// next returns a Block of the ready slots from the cursor on, at most
// maxBlockFrames, and moves the cursor past them; ok=false if the slot at the
// cursor is not ready. It never allocates.
func (s *slotRing) next() (b *Block, ok bool) {
	first := s.cur
	n := 0
	for n < maxBlockFrames && s.ready(s.cur) {
		s.held[s.cur] = true
		n++
		if s.cur++; s.cur == len(s.held) {
			s.cur = 0
		}
	}
	if n == 0 {
		return nil, false
	}
	b = &s.blocks[first]
	b.n, b.i, b.corrupt, b.truncated, b.held = uint32(n), 0, false, 0, true
	return b, true
}

// release gives the slots of b back to the kernel. The status store is
// atomic, so it is ordered after every read of the slots' frames.
func (s *slotRing) release(b *Block) {
	for i := range int(b.n) {
		slot := s.wrap(b.idx + i)
		s.held[slot] = false
		atomic.StoreUint32(s.status(slot), tpStatusKernel)
	}
	b.held = false
}
