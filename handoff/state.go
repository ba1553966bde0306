// Package handoff is the control protocol between the switch and the agents
// on its back-ends, and only that, shared by both ends: the frame and message
// layouts (proto.go), the authenticated session without I/O (session.go), and
// the connection state a HANDOFF carries (state.go).
//
// The switch's end is package handoff/control (a shard's control
// connections); the back-end's end is package handoff/agent (which
// re-creates handed-off connections), and package serve serves them.
package handoff

import "net/netip"

// ConnState is everything the agent needs to re-create a connection that the
// switch accepted: addresses, sequence numbers, windows and negotiated options.
// Sequence numbers are absolute 32-bit TCP values.
type ConnState struct {
	Client netip.AddrPort // the client's address and port
	VIP    netip.AddrPort // the virtual address and port the client connected to

	SndISN uint32 // the switch's initial sequence number (its SYN-ACK)
	SndNxt uint32 // next sequence number the back-end sends (SndISN+1: the switch sent no data)
	RcvIRS uint32 // the client's initial sequence number (its SYN)
	RcvNxt uint32 // next byte expected from the client, after the request bytes

	SndWnd    uint32 // the client's receive window in bytes (already scaled)
	RcvWnd    uint32 // the window the switch last advertised, in bytes (already scaled)
	MSS       uint16 // the client's MSS
	SndWScale uint8  // the client's window scale (valid if WScaleOK)
	RcvWScale uint8  // the window scale the switch advertised (valid if WScaleOK)
	WScaleOK  bool   // window scaling was negotiated
	SACKOK    bool   // SACK permitted was negotiated
}
