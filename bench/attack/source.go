package attack

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"webswitch/bench/pktrate"
	"webswitch/ring"
	"webswitch/tcpfsm/header"
)

// FloodKind is what a flood sends. The zero value is not a kind; in a
// FloodConfig it stands for the default, FloodSYN.
type FloodKind uint8

const (
	// FloodSYN: bare SYNs, as a client's kernel opens a connection. The
	// switch answers each with a SYN-ACK carrying a cookie and keeps no
	// state.
	FloodSYN FloodKind = iota + 1
	// FloodACK: ACKs of connections that never existed, random sequence
	// and acknowledgment numbers, half of them carrying 1 to
	// maxACKPayload bytes of data. Their cookie is invalid and the switch
	// has no entry for them: each is a connection to recover, which the
	// switch asks its agents about (LOOKUP) within its recovery_rate.
	FloodACK
	numFloodKinds
)

var floodKindNames = [numFloodKinds]string{FloodSYN: "syn", FloodACK: "ack"}

func (k FloodKind) valid() bool { return k >= FloodSYN && k < numFloodKinds }

func (k FloodKind) String() string {
	if !k.valid() {
		return fmt.Sprintf("FloodKind(%d)", uint8(k))
	}
	return floodKindNames[k]
}

// MarshalText returns the kind's name ("syn", "ack"), for JSON and flags.
func (k FloodKind) MarshalText() ([]byte, error) {
	if !k.valid() {
		return nil, fmt.Errorf("%w: flood kind %d", ErrConfig, uint8(k))
	}
	return []byte(floodKindNames[k]), nil
}

// UnmarshalText sets k from its name, "syn" or "ack".
func (k *FloodKind) UnmarshalText(b []byte) error {
	for kind := FloodSYN; kind < numFloodKinds; kind++ {
		if string(b) == floodKindNames[kind] {
			*k = kind
			return nil
		}
	}
	return fmt.Errorf("%w: flood kind %q: want syn or ack", ErrConfig, b)
}

// Spoofed sources: random addresses of the benchmarking range (RFC 2544)
// but for its first sourceSkip addresses, the test LAN (testbed.LAN), whose
// addresses belong to real hosts (a segment from a real client's address
// and port would meet its connection); random ports from 1024 up.
var sourceNet = netip.MustParsePrefix("198.18.0.0/15")

const (
	sourceSkip  = 256
	sourceCount = 1<<(32-15) - sourceSkip // addresses drawn from
	minPort     = 1024
)

// synOptions are the options of a Linux SYN without timestamps: MSS 1460,
// NOP, NOP, SACK permitted, NOP, window scale 7.
var synOptions = []byte{2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7}

const (
	// synWindow is the window of a Linux SYN (an MSS of 1460 times 44).
	synWindow = 64240
	// ackWindow is the window field of an established Linux connection's
	// ACK: synWindow scaled down by 7.
	ackWindow = synWindow >> 7
	// maxACKPayload is the most data an ACK of a flood carries.
	maxACKPayload = 100
)

// floodSource makes the segments of a flood (see FloodKind): to one
// address and port, each from a random source address and port with
// random sequence numbers.
type floodSource struct {
	kind   FloodKind
	seg    pktrate.Segment
	rng    *rand.PCG
	base   uint32 // sourceNet's first address
	maxLen int    // the longest frame: what next needs room for
	// data is what the ACKs with data carry, a prefix of it: random, drawn
	// once.
	data [maxACKPayload]byte
}

// newFloodSource returns a source of the segments of a flood of kind (a
// valid one) from srcMAC to dstMAC for dst:port, its randomness seeded
// with seed1 and seed2.
func newFloodSource(kind FloodKind, srcMAC, dstMAC [6]byte, dst [4]byte, port uint16, seed1, seed2 uint64) *floodSource {
	base := sourceNet.Addr().As4()
	s := &floodSource{
		kind: kind,
		seg:  pktrate.Segment{SrcMAC: srcMAC, DstMAC: dstMAC, Dst: dst, DstPort: port},
		rng:  rand.NewPCG(seed1, seed2),
		base: binary.BigEndian.Uint32(base[:]),
	}
	switch kind {
	case FloodSYN:
		s.seg.Flags, s.seg.Window, s.seg.Options = header.FlagSYN, synWindow, synOptions
		s.maxLen = s.seg.Len()
	case FloodACK:
		s.seg.Window = ackWindow
		for i := range s.data {
			s.data[i] = byte(s.rng.Uint64())
		}
		s.maxLen = s.seg.Len() + maxACKPayload
	}
	return s
}

// next writes the next segment's frame into b, which has room for s.maxLen
// bytes, and returns it. It does not allocate.
func (s *floodSource) next(b []byte) []byte {
	v := s.rng.Uint64()
	binary.BigEndian.PutUint32(s.seg.Src[:], s.base+sourceSkip+uint32(v%sourceCount))
	s.seg.SrcPort = minPort + uint16((v>>32)%(1<<16-minPort))
	v = s.rng.Uint64()
	s.seg.Seq = uint32(v)
	if s.kind == FloodACK {
		s.seg.Ack = uint32(v >> 32)
		s.seg.Flags, s.seg.Payload = header.FlagACK, nil
		if w := s.rng.Uint64(); w&1 != 0 {
			s.seg.Flags |= header.FlagPSH // as a sender's kernel marks data
			s.seg.Payload = s.data[:1+(w>>1)%maxACKPayload]
		}
	}
	b = b[:s.seg.Len()]
	s.seg.Encode(b)
	return b
}

// add queues the next segment on snd: the add function of pktrate.Send.
func (s *floodSource) add(snd *ring.Sender) {
	snd.Add(s.next(snd.Buffer(s.maxLen)))
}
