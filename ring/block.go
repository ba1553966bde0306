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
	StatusCopy         = 0x2   // truncated: the frame was longer than the block allowed
	StatusLosing       = 0x4   // the kernel dropped frames since the last statistics read
	StatusCsumNotReady = 0x8   // partial checksum: the transport checksum is not filled in
	StatusVLANValid    = 0x10  // a VLAN tag was stripped
	StatusCsumValid    = 0x80  // the checksum was verified (by the NIC or the kernel)
	StatusGSOTCP       = 0x100 // a TCP GSO super-frame (larger than the MTU)
)

// Block is a view over one block of the receive ring. It is obtained from
// Ring.NextBlock and walked with Next; its frames stay valid until the block
// is released.
type Block struct {
	mem     []byte // the used part of the block, descriptor included
	vnet    bool   // frames are preceded by a virtio-net header
	n       uint32 // frames the kernel announced (num_pkts)
	i       uint32 // frames returned so far
	off     int    // offset of the next frame header in mem
	corrupt bool   // the walk stopped at a malformed frame header
	held    bool   // handed to user space and not yet released
	idx     int    // index of the block in its ring
}

// reset points b at the block in mem, descriptor first.
func (b *Block) reset(mem []byte, vnet bool) {
	b.mem, b.vnet = mem, vnet
	b.n, b.i, b.off, b.corrupt = 0, 0, 0, false
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

// Len reports how many frames the kernel put in the block.
func (b *Block) Len() int { return int(b.n) }

// Corrupt reports whether the block descriptor or a frame header pointed
// outside the block (a corrupt ring): the walk stopped there and the
// remaining frames are skipped. Release counts such blocks in Stats.Corrupt.
func (b *Block) Corrupt() bool { return b.corrupt }

// Next fills f with the next frame of the block and reports whether there was
// one. It returns false at the end of the block and at the first malformed
// frame header (see Corrupt); it never panics on bad offsets and never
// allocates.
func (b *Block) Next(f *Frame) bool {
	if b.corrupt || b.i >= b.n {
		return false
	}
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
	minMac := uint32(fhHeaderLen)
	if b.vnet {
		minMac += VnetHdrLen
	}
	if mac < minMac || mac > limit || snap > limit-mac {
		return b.fail()
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
	f.Status = ne.Uint32(h[fhStatus:])
	f.Len = ne.Uint32(h[fhLen:])
	b.i++
	b.off = off + int(next)
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
