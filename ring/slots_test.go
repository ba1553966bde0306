package ring

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testSlotSize is the slot size of the synthetic V2 rings: a page, or two for
// vnetFrames' 4000-byte frame.
const testSlotSize = 8192

// kernelSlot is a slot the kernel owns (tp_status 0): not ready.
var kernelSlot = synthFrame{}

// buildSlots lays frames out in a V2 ring of len(frames) slots of size bytes
// as the kernel does, one per slot, tp_status = Status (a slot with Status 0
// is the kernel's and left empty).
func buildSlots(size int, vnet bool, frames []synthFrame) []byte {
	mem := make([]byte, len(frames)*size)
	mac := macOffset(f2HeaderLen, vnet)
	for i, f := range frames {
		if f.Status == tpStatusKernel {
			continue
		}
		h := mem[i*size:]
		ne.PutUint32(h[f2Status:], f.Status)
		ne.PutUint32(h[f2Len:], f.Len)
		ne.PutUint32(h[f2Snaplen:], uint32(len(f.Data)))
		ne.PutUint16(h[f2Mac:], uint16(mac))
		copy(h[mac-VnetHdrLen:], f.Vnet)
		copy(h[mac:], f.Data)
	}
	return mem
}

// readyFrames returns n distinct ready frames.
func readyFrames(n int) []synthFrame {
	out := make([]synthFrame, n)
	for i := range out {
		out[i] = synthFrame{Data: bytes.Repeat([]byte{byte(i)}, 60+i), Status: tpStatusUser, Len: uint32(60 + i)}
	}
	return out
}

// wantBlock is what one V2 Block should yield.
type wantBlock struct {
	Frames    []synthFrame
	Len       int
	Truncated uint32
	Corrupt   bool
}

func TestSlotRing(t *testing.T) {
	a, b, c := readyFrames(3)[0], readyFrames(3)[1], readyFrames(3)[2]
	cut := synthFrame{Data: []byte("cut to fit"), Status: StatusGSOTCP | tpStatusUser, Len: 65000}
	badMac := buildSlots(testSlotSize, false, []synthFrame{a, b, c})
	ne.PutUint16(badMac[testSlotSize+f2Mac:], f2HeaderLen-1)
	hugeSnap := buildSlots(testSlotSize, false, []synthFrame{a, b, c})
	ne.PutUint32(hugeSnap[testSlotSize+f2Snaplen:], testSlotSize)
	hundred := readyFrames(100)
	tests := []struct {
		name string
		mem  []byte
		vnet bool
		cur  int         // the cursor at the start
		want []wantBlock // successive blocks, each released before the next
	}{
		{name: "ready frames up to a kernel slot", mem: buildSlots(testSlotSize, false, []synthFrame{a, b, kernelSlot, c}),
			want: []wantBlock{{Frames: []synthFrame{a, b}, Len: 2}}},
		{name: "nothing ready", mem: buildSlots(testSlotSize, false, []synthFrame{kernelSlot, a})},
		{name: "wrap-around at the end of the ring", mem: buildSlots(testSlotSize, false, []synthFrame{c, kernelSlot, a, b}), cur: 2,
			want: []wantBlock{{Frames: []synthFrame{a, b, c}, Len: 3}}},
		{name: "whole ring ready, from the middle", mem: buildSlots(testSlotSize, false, []synthFrame{c, a, b}), cur: 1,
			want: []wantBlock{{Frames: []synthFrame{a, b, c}, Len: 3}}},
		{name: "vnet headers before MAC", mem: buildSlots(testSlotSize, true, append(vnetFrames, kernelSlot)), vnet: true,
			want: []wantBlock{{Frames: vnetFrames, Len: 2}}},
		{name: "truncated frames skipped and counted", mem: buildSlots(testSlotSize, false, []synthFrame{cut, a, cut, b}),
			want: []wantBlock{{Frames: []synthFrame{a, b}, Len: 4, Truncated: 2}}},
		{name: "MAC inside the frame header", mem: badMac, want: []wantBlock{{Frames: []synthFrame{a, c}, Len: 3, Corrupt: true}}},
		{name: "snaplen past the slot", mem: hugeSnap, want: []wantBlock{{Frames: []synthFrame{a, c}, Len: 3, Corrupt: true}}},
		{name: "at most maxBlockFrames per block", mem: buildSlots(testSlotSize, false, hundred), cur: 50, want: []wantBlock{
			{Frames: append(hundred[50:100:100], hundred[:14]...), Len: maxBlockFrames},
			{Frames: hundred[14:50], Len: 36},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(tt.mem) / testSlotSize
			s := newSlotRing(tt.mem, testSlotSize, n, tt.vnet)
			s.cur = tt.cur
			var got []wantBlock
			for b, ok := s.next(); ok; b, ok = s.next() {
				frames := collect(t, b, tt.vnet)
				got = append(got, wantBlock{Frames: frames, Len: b.Len(), Truncated: b.truncated, Corrupt: b.Corrupt()})
				s.release(b)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("blocks (-want +got):\n%s", diff)
			}
		})
	}
}

// statuses returns the tp_status words of the slots of s.
func statuses(s *slotRing) []uint32 {
	out := make([]uint32, len(s.held))
	for i := range out {
		out[i] = *s.status(i)
	}
	return out
}

// TestSlotRingRelease checks that held slots stay in user space and are not
// handed out twice, that release gives exactly a block's slots back to the
// kernel, out of order too, and that the cursor wraps to slots the kernel
// fills again.
func TestSlotRingRelease(t *testing.T) {
	frames := readyFrames(4)
	mem := buildSlots(testSlotSize, false, []synthFrame{frames[0], frames[1], frames[2], kernelSlot})
	s := newSlotRing(mem, testSlotSize, 4, false)
	fill := func(i int) { ne.PutUint32(mem[i*testSlotSize+f2Status:], tpStatusUser) } // the kernel writes slot i
	const k, u = tpStatusKernel, tpStatusUser

	b1, ok := s.next()
	if !ok || b1.idx != 0 || b1.Len() != 3 {
		t.Fatalf("first block: %v, ok %v; want slots 0-2", b1, ok)
	}
	if _, ok := s.next(); ok {
		t.Fatalf("a block while the only ready slots are held")
	}
	fill(3)
	b2, ok := s.next()
	if !ok || b2.idx != 3 || b2.Len() != 1 {
		t.Fatalf("second block: %v, ok %v; want slot 3", b2, ok)
	}
	if _, ok := s.next(); ok {
		t.Fatalf("a block from slot 0, which is held")
	}
	if diff := cmp.Diff([]uint32{u, u, u, u}, statuses(s)); diff != "" {
		t.Errorf("statuses while held (-want +got):\n%s", diff)
	}
	s.release(b2) // out of order
	if diff := cmp.Diff([]uint32{u, u, u, k}, statuses(s)); diff != "" {
		t.Errorf("statuses after releasing slot 3 (-want +got):\n%s", diff)
	}
	s.release(b1)
	if diff := cmp.Diff([]uint32{k, k, k, k}, statuses(s)); diff != "" {
		t.Errorf("statuses after releasing all (-want +got):\n%s", diff)
	}
	if b1.held || b2.held || s.held[0] || s.held[3] {
		t.Errorf("blocks or slots still held after release")
	}
	fill(0)
	fill(1)
	b3, ok := s.next()
	if !ok || b3.idx != 0 || b3.Len() != 2 {
		t.Fatalf("block after wrapping: %v, ok %v; want slots 0-1", b3, ok)
	}
}

func TestSlotRingNoAllocs(t *testing.T) {
	mem := buildSlots(testSlotSize, true, append(vnetFrames, vnetFrames...))
	s := newSlotRing(mem, testSlotSize, 4, true)
	var f Frame
	frames := 0
	allocs := testing.AllocsPerRun(100, func() {
		for i := range 4 {
			ne.PutUint32(mem[i*testSlotSize+f2Status:], tpStatusUser)
		}
		for b, ok := s.next(); ok; b, ok = s.next() {
			for b.Next(&f) {
				frames++
			}
			s.release(b)
		}
	})
	if allocs != 0 {
		t.Errorf("walking a V2 ring allocates %v times, want 0", allocs)
	}
	if frames != 4*101 {
		t.Errorf("walked %d frames, want %d", frames, 4*101)
	}
}

func FuzzSlotNext(f *testing.F) {
	const size = 256
	f.Add(buildSlots(size, false, append(readyFrames(2), kernelSlot)), false)
	f.Add(buildSlots(size, true, []synthFrame{{Data: []byte("gso"), Vnet: vnetFrames[0].Vnet, Status: tpStatusUser, Len: 3}}), true)
	f.Fuzz(func(t *testing.T, mem []byte, vnet bool) {
		n := len(mem) / size
		if n == 0 {
			return
		}
		s := newSlotRing(mem[:n*size], size, n, vnet)
		var fr Frame
		handed := 0
		for b, ok := s.next(); ok; b, ok = s.next() {
			got := 0
			for b.Next(&fr) {
				got++
				if vnet != (len(fr.Vnet) == VnetHdrLen) || len(fr.Raw) != len(fr.Vnet)+len(fr.Data) || uint32(len(fr.Data)) < fr.Len {
					t.Fatalf("frame slices: vnet %d, data %d, raw %d, len %d", len(fr.Vnet), len(fr.Data), len(fr.Raw), fr.Len)
				}
			}
			if got+int(b.truncated) > b.Len() || got+int(b.truncated) < b.Len() && !b.Corrupt() {
				t.Fatalf("block of %d slots gave %d frames, %d truncated, corrupt %v", b.Len(), got, b.truncated, b.Corrupt())
			}
			handed += b.Len()
			s.release(b)
		}
		if handed > n {
			t.Fatalf("%d slots handed out of %d", handed, n)
		}
	})
}
