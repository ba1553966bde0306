package ring

import "encoding/binary"

// ne reads ring memory: the kernel writes its headers in host byte order.
var ne = binary.NativeEndian

// Layout of struct tpacket_block_desc holding a struct tpacket_hdr_v1
// (linux/if_packet.h); the layout test checks it against x/sys/unix.
const (
	bdBlockStatus = 8  // u32 block_status
	bdNumPkts     = 12 // u32 num_pkts
	bdFirstPkt    = 16 // u32 offset_to_first_pkt
	bdBlkLen      = 20 // u32 blk_len
	bdHeaderLen   = 48 // sizeof(struct tpacket_block_desc)
)

// Layout of struct tpacket3_hdr.
const (
	fhNextOffset = 0  // u32 tp_next_offset
	fhSnaplen    = 12 // u32 tp_snaplen
	fhLen        = 16 // u32 tp_len
	fhStatus     = 20 // u32 tp_status
	fhMac        = 24 // u16 tp_mac
	fhHeaderLen  = 48 // sizeof(struct tpacket3_hdr)
)

// Frame status bits (tp_status, TP_STATUS_* in linux/if_packet.h), so that
// callers need not import x/sys/unix.
const (
	StatusCopy         = 0x2   // the kernel queued a full copy on the socket (PACKET_COPY_THRESH, not used here)
	StatusLosing       = 0x4   // the kernel dropped frames since the last statistics read (V2 frames only)
	StatusCsumNotReady = 0x8   // partial checksum: the transport checksum is not filled in
	StatusVLANValid    = 0x10  // a VLAN tag was stripped
	StatusCsumValid    = 0x80  // the checksum was verified (by the NIC or the kernel)
	StatusGSOTCP       = 0x100 // a TCP GSO super-frame (larger than the MTU)
)

// Ownership values of a status word (block_status in V3, tp_status in V2).
const (
	tpStatusKernel = 0 // the kernel may write the block or slot
	tpStatusUser   = 1 // the kernel filled it for user space
)

// Block is a view over frames of the receive ring: one block of a V3 ring, or
// a run of consecutive ready slots of a V2 ring. It is obtained from
// Ring.NextBlock and walked with Next; its frames stay valid until the block
// is released.
type Block struct {
	mem       []byte    // V3: the used part of the block, descriptor included
	slots     *slotRing // V2: the ring whose slots the block covers; nil in V3
	vnet      bool      // frames are preceded by a virtio-net header
	n         uint32    // frames in the block (V3: num_pkts; V2: slots)
	i         uint32    // frames walked so far
	off       int       // V3: offset of the next frame header in mem
	corrupt   bool      // the walk met a malformed frame header
	truncated uint32    // frames skipped because the kernel cut them
	held      bool      // handed to user space and not yet released
	idx       int       // V3: index of the block in its ring; V2: first slot
}

// reset points b at the V3 block in mem, descriptor first.
func (b *Block) reset(mem []byte, vnet bool) {
	b.mem, b.vnet = mem, vnet
	b.n, b.i, b.off, b.corrupt, b.truncated = 0, 0, 0, false, 0
	if len(mem) < bdHeaderLen {
		b.corrupt = true
		return
	}
	b.n = ne.Uint32(mem[bdNumPkts:])
	b.off = int(ne.Uint32(mem[bdFirstPkt:]))
	if b.n == 0 {
		return
	}
	// Frames lie within the block's used length.
	used := ne.Uint32(mem[bdBlkLen:])
	if used < bdHeaderLen || used > uint32(len(mem)) {
		b.corrupt = true
		return
	}
	b.mem = mem[:used:used]
}

// Len reports how many frames the kernel put in the block, counting those
// Next skips.
func (b *Block) Len() int { return int(b.n) }

// Corrupt reports whether a block descriptor or frame header pointed outside
// its block or slot (a corrupt ring). In a V3 block the walk stops there and
// the remaining frames are skipped; in a V2 block, whose slots are
// independent, only that frame is. Release counts such blocks in
// Stats.Corrupt.
func (b *Block) Corrupt() bool { return b.corrupt }

// Next fills f with the next frame of the block and reports whether there was
// one. It skips frames the kernel truncated to fit the ring (tp_snaplen <
// tp_len; Release counts them in Stats.Truncated), and frames with a
// malformed header (see Corrupt); it never panics on bad offsets and never
// allocates.
func (b *Block) Next(f *Frame) bool {
	if b.slots != nil {
		return b.nextSlot(f)
	}
	for !b.corrupt && b.i < b.n {
		off := b.off
		if off < bdHeaderLen || off > len(b.mem)-fhHeaderLen {
			return b.fail()
		}
		h := b.mem[off:]
		next := ne.Uint32(h[fhNextOffset:])
		snap := ne.Uint32(h[fhSnaplen:])
		mac := uint32(ne.Uint16(h[fhMac:]))
		limit := uint32(len(h)) // bytes this frame may span
		if b.i+1 < b.n {
			// Not the last frame: the next header follows this frame.
			if next < fhHeaderLen || next > limit {
				return b.fail()
			}
			limit = next
		}
		if !b.fits(mac, snap, limit, fhHeaderLen) {
			return b.fail()
		}
		b.i++
		b.off = off + int(next)
		if b.keep(f, h, mac, snap, ne.Uint32(h[fhLen:])) {
			f.Status = ne.Uint32(h[fhStatus:])
			return true
		}
	}
	return false
}

// nextSlot is Next for a V2 block: one frame per slot, each checked alone.
func (b *Block) nextSlot(f *Frame) bool {
	s := b.slots
	for b.i < b.n {
		h := s.slot(s.wrap(b.idx + int(b.i)))
		b.i++
		snap := ne.Uint32(h[f2Snaplen:])
		mac := uint32(ne.Uint16(h[f2Mac:]))
		if !b.fits(mac, snap, uint32(len(h)), f2HeaderLen) {
			b.corrupt = true
			continue
		}
		if b.keep(f, h, mac, snap, ne.Uint32(h[f2Len:])) {
			f.Status = ne.Uint32(h[f2Status:])
			return true
		}
	}
	return false
}

// fits reports whether a frame of snap bytes at offset mac, after a frame
// header of hdrLen bytes and the virtio-net header if any, lies within limit.
func (b *Block) fits(mac, snap, limit, hdrLen uint32) bool {
	if b.vnet {
		hdrLen += VnetHdrLen
	}
	return mac >= hdrLen && mac <= limit && snap <= limit-mac
}

// keep fills f (but its Status) with the frame at h[mac:mac+snap] of wire
// length length, unless the kernel truncated it: it then counts it and
// reports false.
func (b *Block) keep(f *Frame, h []byte, mac, snap, length uint32) bool {
	if snap < length {
		b.truncated++
		return false
	}
	end := mac + snap
	f.Data = h[mac:end:end]
	if b.vnet {
		f.Vnet = h[mac-VnetHdrLen : mac : mac]
		f.Raw = h[mac-VnetHdrLen : end : end]
	} else {
		f.Vnet = nil
		f.Raw = f.Data
	}
	f.Len = length
	return true
}

func (b *Block) fail() bool {
	b.corrupt = true
	return false
}

// Frame is one received frame. Its slices point into ring memory and stay
// valid only until the block holding it is released.
type Frame struct {
	Data   []byte // from the MAC header, tp_snaplen bytes
	Vnet   []byte // the VnetHdrLen bytes before Data when VnetHdr, else nil
	Raw    []byte // Vnet followed by Data (Data alone without VnetHdr): what Sender.Add takes to forward the frame
	Status uint32 // tp_status bits (StatusCsumNotReady, StatusGSOTCP, ...)
	Len    uint32 // original length on the wire (or of the super-frame)
}
