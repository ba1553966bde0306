package ring

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// synthFrame is one frame of a synthetic block.
type synthFrame struct {
	Data   []byte
	Vnet   []byte // nil unless the block has vnet headers
	Status uint32
	Len    uint32
}

// macOffset mirrors tpacket_rcv for SOCK_RAW: the network header is aligned
// to 16 bytes after the frame header of hdrLen bytes (fhHeaderLen or
// f2HeaderLen) and the sockaddr_ll (20 bytes), and the virtio-net header, if
// any, sits right before the MAC header.
func macOffset(hdrLen int, vnet bool) int {
	net := (hdrLen + 20 + 16 + 15) &^ 15
	if vnet {
		net += VnetHdrLen
	}
	return net - 14
}

// buildBlock lays frames out in a block of size bytes as the kernel does.
func buildBlock(size int, vnet bool, frames []synthFrame) []byte {
	mem := make([]byte, size)
	off := bdHeaderLen
	ne.PutUint32(mem[bdNumPkts:], uint32(len(frames)))
	ne.PutUint32(mem[bdFirstPkt:], uint32(off))
	mac := macOffset(fhHeaderLen, vnet)
	for i, f := range frames {
		h := mem[off:]
		next := (mac + len(f.Data) + 7) &^ 7
		if i == len(frames)-1 {
			ne.PutUint32(h[fhNextOffset:], 0)
		} else {
			ne.PutUint32(h[fhNextOffset:], uint32(next))
		}
		ne.PutUint32(h[fhSnaplen:], uint32(len(f.Data)))
		ne.PutUint32(h[fhLen:], f.Len)
		ne.PutUint32(h[fhStatus:], f.Status)
		ne.PutUint16(h[fhMac:], uint16(mac))
		copy(h[mac-VnetHdrLen:], f.Vnet)
		copy(h[mac:], f.Data)
		off += next
	}
	ne.PutUint32(mem[bdBlkLen:], uint32(off))
	return mem
}

// walk returns the frames of the V3 block in mem (copied) and the block after
// the walk.
func walk(t *testing.T, mem []byte, vnet bool) ([]synthFrame, *Block) {
	t.Helper()
	var b Block
	b.reset(mem, vnet)
	return collect(t, &b, vnet), &b
}

// collect returns copies of the frames Next yields from b, checking Raw.
func collect(t *testing.T, b *Block, vnet bool) []synthFrame {
	t.Helper()
	var out []synthFrame
	var f Frame
	for b.Next(&f) {
		s := synthFrame{Data: bytes.Clone(f.Data), Status: f.Status, Len: f.Len}
		if f.Vnet != nil {
			s.Vnet = bytes.Clone(f.Vnet)
		}
		want := f.Data
		if vnet {
			want = append(bytes.Clone(f.Vnet), f.Data...)
		}
		if !bytes.Equal(f.Raw, want) {
			t.Errorf("frame %d: Raw is not Vnet followed by Data", len(out))
		}
		out = append(out, s)
	}
	return out
}

var threeFrames = []synthFrame{
	{Data: []byte("first frame, sixty bytes long .........................!!!!!"), Status: StatusCsumNotReady | 1, Len: 60},
	{Data: bytes.Repeat([]byte{0xab}, 1514), Status: 1, Len: 1514},
	{Data: []byte("truncated"), Status: 1, Len: 9000}, // cut to fit: skipped
}

var vnetFrames = []synthFrame{
	{Data: bytes.Repeat([]byte{1}, 4000), Vnet: []byte{VnetFlagNeedsCsum, VnetGSOTCPv4, 66, 0, 0xa8, 0x05, 34, 0, 16, 0}, Status: StatusCsumNotReady | StatusGSOTCP | 1, Len: 4000},
	{Data: bytes.Repeat([]byte{2}, 60), Vnet: make([]byte, VnetHdrLen), Status: 1, Len: 60},
}

// corrupted returns a copy of threeFrames' block with edit applied.
func corrupted(edit func(mem []byte)) []byte {
	mem := buildBlock(8192, false, threeFrames)
	edit(mem)
	return mem
}

// second is the offset of the second frame header of threeFrames' block.
var second = bdHeaderLen + (macOffset(fhHeaderLen, false)+len(threeFrames[0].Data)+7)&^7

func TestBlockNext(t *testing.T) {
	tests := []struct {
		name          string
		mem           []byte
		vnet          bool
		want          []synthFrame
		wantCorrupt   bool
		wantTruncated uint32
	}{
		{name: "three frames, the last truncated", mem: buildBlock(8192, false, threeFrames), want: threeFrames[:2], wantTruncated: 1},
		{name: "walk goes on after a truncated frame", mem: buildBlock(8192, false, []synthFrame{threeFrames[2], threeFrames[1]}),
			want: threeFrames[1:2], wantTruncated: 1},
		{name: "vnet headers before MAC", mem: buildBlock(8192, true, vnetFrames), vnet: true, want: vnetFrames},
		{name: "one frame filling the block", mem: buildBlock(1024, false, []synthFrame{{Data: make([]byte, 1024-bdHeaderLen-macOffset(fhHeaderLen, false))}}),
			want: []synthFrame{{Data: make([]byte, 1024-bdHeaderLen-macOffset(fhHeaderLen, false))}}},
		{name: "empty block", mem: buildBlock(4096, false, nil)},
		{name: "empty block with garbage length", mem: corrupted(func(m []byte) {
			ne.PutUint32(m[bdNumPkts:], 0)
			ne.PutUint32(m[bdBlkLen:], 1<<30)
		})},
		{name: "short block", mem: make([]byte, bdHeaderLen-1), wantCorrupt: true},
		{name: "first offset past the end", mem: corrupted(func(m []byte) { ne.PutUint32(m[bdFirstPkt:], 8192-8) }), wantCorrupt: true},
		{name: "first offset inside descriptor", mem: corrupted(func(m []byte) { ne.PutUint32(m[bdFirstPkt:], 8) }), wantCorrupt: true},
		{name: "block length past the block", mem: corrupted(func(m []byte) { ne.PutUint32(m[bdBlkLen:], 8193) }), wantCorrupt: true},
		{name: "more frames announced than present", mem: corrupted(func(m []byte) { ne.PutUint32(m[bdNumPkts:], 4) }),
			want: threeFrames[:2], wantCorrupt: true},
		{name: "zero next offset before the last frame", mem: corrupted(func(m []byte) { ne.PutUint32(m[bdHeaderLen+fhNextOffset:], 0) }),
			wantCorrupt: true},
		{name: "next offset past the end", mem: corrupted(func(m []byte) { ne.PutUint32(m[bdHeaderLen+fhNextOffset:], 1<<31) }),
			wantCorrupt: true},
		{name: "snaplen past the next frame", mem: corrupted(func(m []byte) { ne.PutUint32(m[second+fhSnaplen:], 1515+8) }),
			want: threeFrames[:1], wantCorrupt: true},
		{name: "huge snaplen", mem: corrupted(func(m []byte) { ne.PutUint32(m[bdHeaderLen+fhSnaplen:], 0xffffffff) }),
			wantCorrupt: true},
		{name: "MAC inside frame header", mem: corrupted(func(m []byte) { ne.PutUint16(m[second+fhMac:], fhHeaderLen-1) }),
			want: threeFrames[:1], wantCorrupt: true},
		{name: "vnet header would overlap frame header", mem: func() []byte {
			m := buildBlock(8192, true, vnetFrames)
			ne.PutUint16(m[bdHeaderLen+fhMac:], fhHeaderLen+VnetHdrLen-1)
			return m
		}(), vnet: true, wantCorrupt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, b := walk(t, tt.mem, tt.vnet)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
			if b.Corrupt() != tt.wantCorrupt || b.truncated != tt.wantTruncated {
				t.Errorf("Corrupt() = %v, truncated %d; want %v, %d", b.Corrupt(), b.truncated, tt.wantCorrupt, tt.wantTruncated)
			}
		})
	}
}

func TestVnetHeader(t *testing.T) {
	h := VnetHeader(vnetFrames[0].Vnet)
	got := []int{int(h.Flags()), int(h.GSOType()), int(h.HdrLen()), int(h.GSOSize()), int(h.CsumStart()), int(h.CsumOffset())}
	want := []int{VnetFlagNeedsCsum, VnetGSOTCPv4, 66, 1448, 34, 16}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}

func TestBlockNextNoAllocs(t *testing.T) {
	mem := buildBlock(8192, true, vnetFrames)
	var b Block
	var f Frame
	allocs := testing.AllocsPerRun(100, func() {
		b.reset(mem, true)
		for b.Next(&f) {
		}
	})
	if allocs != 0 {
		t.Errorf("walking a block allocates %v times, want 0", allocs)
	}
}

func FuzzBlockNext(f *testing.F) {
	small := []synthFrame{{Data: []byte("a small frame"), Len: 13}, {Data: []byte("another"), Len: 7}}
	f.Add(buildBlock(512, false, small), false)
	f.Add(buildBlock(512, true, []synthFrame{{Data: []byte("gso"), Vnet: vnetFrames[0].Vnet, Len: 3}}), true)
	f.Fuzz(func(t *testing.T, mem []byte, vnet bool) {
		var b Block
		b.reset(mem, vnet)
		var fr Frame
		n := 0
		for b.Next(&fr) {
			n++
			if n > b.Len() {
				t.Fatalf("walk returned %d frames of %d", n, b.Len())
			}
			if vnet != (len(fr.Vnet) == VnetHdrLen) || len(fr.Raw) != len(fr.Vnet)+len(fr.Data) {
				t.Fatalf("frame slices: vnet %d, data %d, raw %d", len(fr.Vnet), len(fr.Data), len(fr.Raw))
			}
		}
		if n+int(b.truncated) < b.Len() && !b.Corrupt() {
			t.Fatalf("walk stopped after %d of %d frames (%d truncated) without Corrupt", n, b.Len(), b.truncated)
		}
	})
}

func BenchmarkBlockNext(b *testing.B) {
	frames := make([]synthFrame, 0, 64)
	for range cap(frames) {
		frames = append(frames, synthFrame{Data: make([]byte, 1514), Vnet: make([]byte, VnetHdrLen), Status: 1, Len: 1514})
	}
	mem := buildBlock(256<<10, true, frames)
	var blk Block
	var f Frame
	b.ReportAllocs()
	for b.Loop() {
		blk.reset(mem, true)
		for blk.Next(&f) {
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
}
