package ring

import (
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestLayout checks the offsets the walker uses, and the constants it
// redefines, against x/sys/unix.
func TestLayout(t *testing.T) {
	var bd unix.TpacketHdrV1
	var fh unix.Tpacket3Hdr
	var f2 unix.Tpacket2Hdr
	var desc unix.TpacketBlockDesc
	hdr := int(unsafe.Offsetof(desc.Hdr))
	got := map[string]int{
		"bdBlockStatus": bdBlockStatus, "bdNumPkts": bdNumPkts, "bdFirstPkt": bdFirstPkt, "bdBlkLen": bdBlkLen,
		"bdHeaderLen":  bdHeaderLen,
		"fhNextOffset": fhNextOffset, "fhSnaplen": fhSnaplen, "fhLen": fhLen, "fhStatus": fhStatus, "fhMac": fhMac,
		"fhHeaderLen": fhHeaderLen,
		"f2Status":    f2Status, "f2Len": f2Len, "f2Snaplen": f2Snaplen, "f2Mac": f2Mac, "f2HeaderLen": f2HeaderLen,
		"tpStatusKernel": tpStatusKernel, "tpStatusUser": tpStatusUser,
		"StatusCopy": StatusCopy, "StatusLosing": StatusLosing, "StatusCsumNotReady": StatusCsumNotReady,
		"StatusVLANValid": StatusVLANValid, "StatusCsumValid": StatusCsumValid, "StatusGSOTCP": StatusGSOTCP,
		"bpfLdWAbs": bpfLdWAbs, "bpfLdHAbs": bpfLdHAbs, "bpfLdBAbs": bpfLdBAbs, "bpfJeqK": bpfJeqK, "bpfRetK": bpfRetK,
	}
	want := map[string]int{
		"bdBlockStatus":  hdr + int(unsafe.Offsetof(bd.Block_status)),
		"bdNumPkts":      hdr + int(unsafe.Offsetof(bd.Num_pkts)),
		"bdFirstPkt":     hdr + int(unsafe.Offsetof(bd.Offset_to_first_pkt)),
		"bdBlkLen":       hdr + int(unsafe.Offsetof(bd.Blk_len)),
		"bdHeaderLen":    int(unsafe.Sizeof(desc)),
		"fhNextOffset":   int(unsafe.Offsetof(fh.Next_offset)),
		"fhSnaplen":      int(unsafe.Offsetof(fh.Snaplen)),
		"fhLen":          int(unsafe.Offsetof(fh.Len)),
		"fhStatus":       int(unsafe.Offsetof(fh.Status)),
		"fhMac":          int(unsafe.Offsetof(fh.Mac)),
		"fhHeaderLen":    unix.SizeofTpacket3Hdr,
		"f2Status":       int(unsafe.Offsetof(f2.Status)),
		"f2Len":          int(unsafe.Offsetof(f2.Len)),
		"f2Snaplen":      int(unsafe.Offsetof(f2.Snaplen)),
		"f2Mac":          int(unsafe.Offsetof(f2.Mac)),
		"f2HeaderLen":    unix.SizeofTpacket2Hdr,
		"tpStatusKernel": unix.TP_STATUS_KERNEL, "tpStatusUser": unix.TP_STATUS_USER,
		"StatusCopy": unix.TP_STATUS_COPY, "StatusLosing": unix.TP_STATUS_LOSING,
		"StatusCsumNotReady": unix.TP_STATUS_CSUMNOTREADY, "StatusVLANValid": unix.TP_STATUS_VLAN_VALID,
		"StatusCsumValid": unix.TP_STATUS_CSUM_VALID, "StatusGSOTCP": unix.TP_STATUS_GSO_TCP,
		"bpfLdWAbs": unix.BPF_LD | unix.BPF_W | unix.BPF_ABS,
		"bpfLdHAbs": unix.BPF_LD | unix.BPF_H | unix.BPF_ABS,
		"bpfLdBAbs": unix.BPF_LD | unix.BPF_B | unix.BPF_ABS,
		"bpfJeqK":   unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K,
		"bpfRetK":   unix.BPF_RET | unix.BPF_K,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layout (-x/sys/unix +ring):\n%s", diff)
	}
}

// TestV2FrameSize checks that DefaultV2FrameSize holds the largest frame
// tpacket_rcv writes into a V2 slot (macoff + snaplen <= tp_frame_size): an
// IPv4 packet of 65535 bytes behind a MAC header with a VLAN tag, with the
// virtio-net header.
func TestV2FrameSize(t *testing.T) {
	const align = 16 // TPACKET_ALIGNMENT
	tpHdrLen := (unix.SizeofTpacket2Hdr+align-1)&^(align-1) + unix.SizeofSockaddrLinklayer
	const macLen = 14 + 4
	netoff := (tpHdrLen+macLen+align-1)&^(align-1) + VnetHdrLen
	if need := netoff + 0xffff; DefaultV2FrameSize < need || DefaultV2FrameSize%align != 0 {
		t.Errorf("DefaultV2FrameSize = %d, want a multiple of %d of at least %d", DefaultV2FrameSize, align, need)
	}
}
