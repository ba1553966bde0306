package attack

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"

	"webswitch/bench/pktrate"
	"webswitch/ring"
	"webswitch/tcpfsm/header"
)

// Spoofed sources: random addresses of the benchmarking range (RFC 2544)
// but for its first sourceSkip addresses, the test LAN (testbed.LAN), whose
// addresses belong to real hosts (a SYN from a real client's address and
// port would meet its connection); random ports from 1024 up.
var sourceNet = netip.MustParsePrefix("198.18.0.0/15")

const (
	sourceSkip  = 256
	sourceCount = 1<<(32-15) - sourceSkip // addresses drawn from
	minPort     = 1024
)

// synOptions are the options of a Linux SYN without timestamps: MSS 1460,
// NOP, NOP, SACK permitted, NOP, window scale 7.
var synOptions = []byte{2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7}

// synWindow is the window of a Linux SYN (an MSS of 1460 times 44).
const synWindow = 64240

// synSource makes the SYNs of a flood: to one address and port, each from a
// random source address and port with a random initial sequence number.
type synSource struct {
	seg  pktrate.Segment
	rng  *rand.PCG
	base uint32 // sourceNet's first address
}

// newSYNSource returns a source of SYNs from srcMAC to dstMAC for dst:port,
// its randomness seeded with seed1 and seed2.
func newSYNSource(srcMAC, dstMAC [6]byte, dst [4]byte, port uint16, seed1, seed2 uint64) *synSource {
	base := sourceNet.Addr().As4()
	return &synSource{
		seg: pktrate.Segment{
			SrcMAC: srcMAC, DstMAC: dstMAC, Dst: dst, DstPort: port,
			Flags: header.FlagSYN, Window: synWindow, Options: synOptions,
		},
		rng:  rand.NewPCG(seed1, seed2),
		base: binary.BigEndian.Uint32(base[:]),
	}
}

// next writes the next SYN into b[:s.seg.Len()]. It does not allocate.
func (s *synSource) next(b []byte) {
	v := s.rng.Uint64()
	binary.BigEndian.PutUint32(s.seg.Src[:], s.base+sourceSkip+uint32(v%sourceCount))
	s.seg.SrcPort = minPort + uint16((v>>32)%(1<<16-minPort))
	s.seg.Seq = uint32(s.rng.Uint64())
	s.seg.Encode(b)
}

// add queues the next SYN on snd: the add function of pktrate.Send.
func (s *synSource) add(snd *ring.Sender) {
	b := snd.Buffer(s.seg.Len())
	s.next(b)
	snd.Add(b)
}
