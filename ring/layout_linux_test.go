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
	var desc unix.TpacketBlockDesc
	hdr := int(unsafe.Offsetof(desc.Hdr))
	got := map[string]int{
		"bdBlockStatus": bdBlockStatus, "bdNumPkts": bdNumPkts, "bdFirstPkt": bdFirstPkt, "bdBlkLen": bdBlkLen,
		"bdHeaderLen":  bdHeaderLen,
		"fhNextOffset": fhNextOffset, "fhSnaplen": fhSnaplen, "fhLen": fhLen, "fhStatus": fhStatus, "fhMac": fhMac,
		"fhHeaderLen": fhHeaderLen,
		"StatusCopy":  StatusCopy, "StatusLosing": StatusLosing, "StatusCsumNotReady": StatusCsumNotReady,
		"StatusVLANValid": StatusVLANValid, "StatusCsumValid": StatusCsumValid, "StatusGSOTCP": StatusGSOTCP,
		"bpfLdWAbs": bpfLdWAbs, "bpfLdHAbs": bpfLdHAbs, "bpfLdBAbs": bpfLdBAbs, "bpfJeqK": bpfJeqK, "bpfRetK": bpfRetK,
	}
	want := map[string]int{
		"bdBlockStatus": hdr + int(unsafe.Offsetof(bd.Block_status)),
		"bdNumPkts":     hdr + int(unsafe.Offsetof(bd.Num_pkts)),
		"bdFirstPkt":    hdr + int(unsafe.Offsetof(bd.Offset_to_first_pkt)),
		"bdBlkLen":      hdr + int(unsafe.Offsetof(bd.Blk_len)),
		"bdHeaderLen":   int(unsafe.Sizeof(desc)),
		"fhNextOffset":  int(unsafe.Offsetof(fh.Next_offset)),
		"fhSnaplen":     int(unsafe.Offsetof(fh.Snaplen)),
		"fhLen":         int(unsafe.Offsetof(fh.Len)),
		"fhStatus":      int(unsafe.Offsetof(fh.Status)),
		"fhMac":         int(unsafe.Offsetof(fh.Mac)),
		"fhHeaderLen":   unix.SizeofTpacket3Hdr,
		"StatusCopy":    unix.TP_STATUS_COPY, "StatusLosing": unix.TP_STATUS_LOSING,
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
