package main

import (
	"encoding/binary"
	"io"
	"time"
)

// The classic pcap file format (what tcpdump -w writes, microsecond
// timestamps), for /capture. It is written here rather than with
// gopacket's pcapgo: importing gopacket/layers costs every start of the
// daemon about 20 ms of package initialisation, which the gap of an
// in-place upgrade pays.
const (
	pcapMagic        = 0xa1b2c3d4 // microsecond timestamps; written little-endian like every field
	linkTypeEthernet = 1
)

// writePcapHeader writes the file header: version 2.4, Ethernet frames
// cut at snapLen bytes.
func writePcapHeader(w io.Writer, snapLen int) error {
	var h [24]byte // the time zone and accuracy fields stay 0
	binary.LittleEndian.PutUint32(h[0:], pcapMagic)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], uint32(snapLen))
	binary.LittleEndian.PutUint32(h[20:], linkTypeEthernet)
	_, err := w.Write(h[:])
	return err
}

// writePcapRecord writes one frame received at t, cut at snapLen bytes.
func writePcapRecord(w io.Writer, t time.Time, frame []byte, snapLen int) error {
	data := frame[:min(len(frame), snapLen)]
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(h[4:], uint32(t.Nanosecond()/int(time.Microsecond)))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(frame)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}
