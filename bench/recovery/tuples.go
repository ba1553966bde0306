package recovery

import (
	"fmt"
	"net/netip"

	"webswitch/bench/pktrate"
	"webswitch/bench/testbed"
	"webswitch/handoff"
	"webswitch/tcpfsm/header"
)

// The connections' clients: addresses of the test LAN that no host has
// (above the attacker's), so the back-ends can route to them (a repaired
// socket's connect needs a route) but their frames reach nobody: the ARP
// requests for them go unanswered. Each address takes portsPerAddr client
// ports, from minPort up.
var clientBase = netip.MustParseAddr("198.18.0.240")

const (
	clientAddrs  = 15 // 198.18.0.240 to .254
	minPort      = 1024
	portsPerAddr = 1<<16 - minPort

	// MaxFlows is the most connections a run can make.
	MaxFlows = clientAddrs * portsPerAddr
)

// vipPort is the port of the connections' VIP end.
const vipPort = 80

// The options the connections are re-created with, as a handoff of a
// Linux client's connection would carry them.
const (
	tupleMSS    = 1460
	tupleScale  = 7
	tupleSndWnd = 1 << 16 // the client's window, scaled
	tupleRcvWnd = 64240   // the window the switch advertised
	// ackWindow is the raw window field of the ACKs: tupleSndWnd at
	// tupleScale.
	ackWindow = tupleSndWnd >> tupleScale
)

// tuple returns connection i's client address and port.
func tuple(i int) netip.AddrPort {
	a := clientBase
	for range i / portsPerAddr {
		a = a.Next()
	}
	return netip.AddrPortFrom(a, uint16(minPort+i%portsPerAddr))
}

// isns returns connection i's initial sequence numbers, the back-end's
// (the switch's SYN-ACK's) and the client's: spread over the sequence
// space, different for every connection.
func isns(i int) (snd, rcv uint32) {
	x := uint32(i)
	return x*2654435761 + 0x1000, x*0x9e3779b9 ^ 0x5bd1e995
}

// connState returns the state connection i is re-created with, as the
// switch would hand it off after the handshake, with no request bytes.
func connState(i int) handoff.ConnState {
	snd, rcv := isns(i)
	return handoff.ConnState{
		Client: tuple(i),
		VIP:    netip.AddrPortFrom(netip.MustParseAddr(testbed.VIP), vipPort),
		SndISN: snd, SndNxt: snd + 1,
		RcvIRS: rcv, RcvNxt: rcv + 1,
		SndWnd: tupleSndWnd, RcvWnd: tupleRcvWnd, MSS: tupleMSS,
		SndWScale: tupleScale, RcvWScale: tupleScale, WScaleOK: true, SACKOK: true,
	}
}

// ackSegment returns the ACK the client of connection i sends next, from
// srcMAC to dstMAC (the switch): its next sequence number, and an
// acknowledgement of everything the back-end's socket has sent, the one
// byte agent.Recreate sends for an RTT sample included. The socket takes
// it as a valid ACK and sends nothing back; the byte no longer
// outstanding is how Run tells that the switch forwarded it.
func ackSegment(i int, srcMAC, dstMAC [6]byte) pktrate.Segment {
	st := connState(i)
	return pktrate.Segment{
		SrcMAC: srcMAC, DstMAC: dstMAC,
		Src: st.Client.Addr().As4(), Dst: st.VIP.Addr().As4(),
		SrcPort: st.Client.Port(), DstPort: st.VIP.Port(),
		Seq: st.RcvNxt, Ack: st.SndNxt,
		Flags: header.FlagACK, Window: ackWindow,
	}
}

// ackFrames returns the ACK frames of connections idx, back to back,
// pktrate.FrameLen bytes each.
func ackFrames(idx []int, srcMAC, dstMAC [6]byte) []byte {
	frames := make([]byte, len(idx)*pktrate.FrameLen)
	for k, i := range idx {
		seg := ackSegment(i, srcMAC, dstMAC)
		seg.Encode(frames[k*pktrate.FrameLen:])
	}
	return frames
}

// checkFlows reports a number of connections out of range.
func checkFlows(n int) error {
	if n < 1 || n > MaxFlows {
		return fmt.Errorf("%w: %d flows: want 1 to %d", ErrConfig, n, MaxFlows)
	}
	return nil
}
