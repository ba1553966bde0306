package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// TestPcapFormat reads what the pcap writer wrote with gopacket's reader:
// the link type, a frame cut at the snap length with its whole length
// kept, and the time to the microsecond.
func TestPcapFormat(t *testing.T) {
	var buf bytes.Buffer
	at := time.Unix(1700000000, 123456789)
	frame := bytes.Repeat([]byte{7}, 100)
	if err := writePcapHeader(&buf, 64); err != nil {
		t.Fatal(err)
	}
	if err := writePcapRecord(&buf, at, frame, 64); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != 64 {
		t.Errorf("link type %v, snap length %d; want Ethernet, 64", r.LinkType(), r.Snaplen())
	}
	data, ci, err := r.ReadPacketData()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, frame[:64]) || ci.CaptureLength != 64 || ci.Length != 100 || !ci.Timestamp.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("record: %d bytes, captured %d of %d at %v; want 64 of 100 at %v", len(data), ci.CaptureLength, ci.Length, ci.Timestamp, at.Truncate(time.Microsecond))
	}
}
