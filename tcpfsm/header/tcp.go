package header

import "encoding/binary"

// TCP constants.
const (
	TCPMinLen = 20

	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
	FlagURG = 0x20

	optEnd      = 0
	optNOP      = 1
	optMSS      = 2
	optWScale   = 3
	optSACKPerm = 4
	optSACK     = 5
	optTS       = 8

	// MaxWScale is the largest window scale RFC 7323 allows.
	MaxWScale = 14
)

// TCP is a view of a TCP header and its payload.
type TCP []byte

// ParseTCP checks b as a TCP segment (header length within b).
func ParseTCP(b []byte) (TCP, error) {
	if len(b) < TCPMinLen {
		return nil, ErrTruncated
	}
	off := int(b[12]>>4) * 4
	if off < TCPMinLen || off > len(b) {
		return nil, ErrDataOffset
	}
	return TCP(b), nil
}

// SrcPort returns the source port.
func (t TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(t[0:2]) }

// DstPort returns the destination port.
func (t TCP) DstPort() uint16 { return binary.BigEndian.Uint16(t[2:4]) }

// Seq returns the sequence number.
func (t TCP) Seq() uint32 { return binary.BigEndian.Uint32(t[4:8]) }

// Ack returns the acknowledgment number.
func (t TCP) Ack() uint32 { return binary.BigEndian.Uint32(t[8:12]) }

// HeaderLen returns the header length including options.
func (t TCP) HeaderLen() int { return int(t[12]>>4) * 4 }

// Flags returns the flag bits.
func (t TCP) Flags() uint8 { return t[13] }

// Window returns the raw (unscaled) window field.
func (t TCP) Window() uint16 { return binary.BigEndian.Uint16(t[14:16]) }

// Options returns the option bytes.
func (t TCP) Options() []byte { return t[TCPMinLen:t.HeaderLen()] }

// Payload returns the data after the header.
func (t TCP) Payload() []byte { return t[t.HeaderLen():] }

// ChecksumValid reports whether the checksum is right for the segment
// carried between src and dst.
func (t TCP) ChecksumValid(src, dst [4]byte) bool {
	return Checksum(t, PseudoSum(src, dst, ProtocolTCP, len(t))) == 0xFFFF
}

// Fields are the values of a TCP header to encode.
type Fields struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
}

// Encode writes the header fields with a header length of 20+optLen bytes
// (the options are written by the caller at t[20:]); the checksum is left
// zero: call SetChecksum once options and payload are in place.
func (t TCP) Encode(f *Fields, optLen int) {
	binary.BigEndian.PutUint16(t[0:2], f.SrcPort)
	binary.BigEndian.PutUint16(t[2:4], f.DstPort)
	binary.BigEndian.PutUint32(t[4:8], f.Seq)
	binary.BigEndian.PutUint32(t[8:12], f.Ack)
	t[12] = uint8((TCPMinLen+optLen)/4) << 4
	t[13] = f.Flags
	binary.BigEndian.PutUint16(t[14:16], f.Window)
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0
}

// SetChecksum computes and stores the checksum of the whole segment t.
func (t TCP) SetChecksum(src, dst [4]byte) {
	t[16], t[17] = 0, 0
	binary.BigEndian.PutUint16(t[16:18], ^Checksum(t, PseudoSum(src, dst, ProtocolTCP, len(t))))
}

// SynOptions are the options of a SYN that the switch keeps (in its cookie).
type SynOptions struct {
	MSS      uint16 // 0 if absent
	WScale   uint8  // valid if WScaleOK
	WScaleOK bool
	SACKOK   bool
}

// ParseSynOptions reads the options of a SYN. Unknown options are skipped;
// a malformed option list (bad length, an option running past the header,
// a wrong length for a known option) is ErrOptions.
func ParseSynOptions(opts []byte, o *SynOptions) error {
	*o = SynOptions{}
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == optEnd {
			return nil
		}
		if kind == optNOP {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return ErrOptions
		}
		n := int(opts[i+1])
		if n < 2 || i+n > len(opts) {
			return ErrOptions
		}
		switch kind {
		case optMSS:
			if n != 4 {
				return ErrOptions
			}
			o.MSS = binary.BigEndian.Uint16(opts[i+2:])
		case optWScale:
			if n != 3 {
				return ErrOptions
			}
			o.WScale, o.WScaleOK = min(opts[i+2], MaxWScale), true
		case optSACKPerm:
			if n != 2 {
				return ErrOptions
			}
			o.SACKOK = true
		case optTS:
			if n != 10 {
				return ErrOptions
			}
		case optSACK:
			if (n-2)%8 != 0 {
				return ErrOptions
			}
		}
		i += n
	}
	return nil
}

// SynAckOptionsLen is the length of the options EncodeSynAckOptions writes.
const SynAckOptionsLen = 12

// EncodeSynAckOptions writes MSS, then SACK permitted and window scale (each
// padded with NOPs to 4 bytes, or all NOPs when not negotiated) into b.
func EncodeSynAckOptions(b []byte, mss uint16, o *SynOptions, wscale uint8) {
	b[0], b[1] = optMSS, 4
	binary.BigEndian.PutUint16(b[2:4], mss)
	b[4], b[5], b[6], b[7] = optNOP, optNOP, optNOP, optNOP
	if o.SACKOK {
		b[6], b[7] = optSACKPerm, 2
	}
	b[8], b[9], b[10], b[11] = optNOP, optNOP, optNOP, optNOP
	if o.WScaleOK {
		b[9], b[10], b[11] = optWScale, 3, wscale
	}
}
