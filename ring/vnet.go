package ring

// VnetHdrLen is the size of struct virtio_net_hdr, which precedes every frame
// in the ring and every transmitted buffer when Config.VnetHdr is set.
const VnetHdrLen = 10

// Virtio-net header flags and GSO types (linux/virtio_net.h).
const (
	VnetFlagNeedsCsum = 1 // checksum at CsumStart+CsumOffset is partial
	VnetFlagDataValid = 2 // checksum already verified

	VnetGSONone  = 0    // not a super-frame
	VnetGSOTCPv4 = 1    // TCP over IPv4 super-frame
	VnetGSOUDP   = 3    // UDP fragmentation offload
	VnetGSOTCPv6 = 4    // TCP over IPv6 super-frame
	VnetGSOECN   = 0x80 // flag: the TCP super-frame carries ECN CWR
)

// VnetHeader is a view over a struct virtio_net_hdr {flags u8, gso_type u8,
// hdr_len u16, gso_size u16, csum_start u16, csum_offset u16} in host byte
// order. The caller makes sure it is at least VnetHdrLen bytes long; an
// all-zero header means "a complete frame, nothing to do" and is what frames
// built by the caller need.
type VnetHeader []byte

// Flags returns the flags byte (VnetFlagNeedsCsum, VnetFlagDataValid).
func (h VnetHeader) Flags() uint8 { return h[0] }

// GSOType returns the GSO type (VnetGSONone, VnetGSOTCPv4, ...).
func (h VnetHeader) GSOType() uint8 { return h[1] }

// HdrLen returns the length of the headers to replicate in each segment.
func (h VnetHeader) HdrLen() uint16 { return ne.Uint16(h[2:]) }

// GSOSize returns the payload size of each segment of a super-frame.
func (h VnetHeader) GSOSize() uint16 { return ne.Uint16(h[4:]) }

// CsumStart returns the offset from the MAC header where checksumming starts.
func (h VnetHeader) CsumStart() uint16 { return ne.Uint16(h[6:]) }

// CsumOffset returns where the checksum goes, relative to CsumStart.
func (h VnetHeader) CsumOffset() uint16 { return ne.Uint16(h[8:]) }
