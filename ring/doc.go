// Package ring is the switch's packet I/O: an AF_PACKET socket with a
// TPACKET_V3 or TPACKET_V2 receive ring (optionally in a PACKET_FANOUT_HASH
// group, behind a classic BPF filter, with virtio-net headers) and a batched
// transmit path built on sendmmsg(2) over the same socket. It holds the whole
// kernel surface of the data path and uses no cgo.
//
// The receive side hands out blocks, not packets: NextBlock returns the next
// block of frames, Block.Next walks its frames without allocating, and
// Release gives the block back. Frames point into the shared ring memory and
// are valid only until their block is released; frames to be forwarded can be
// queued on a Sender straight from ring memory as long as the Sender is
// flushed before the block is released.
//
// The two ring versions differ in when frames reach user space (see
// Config.Version): a V3 block is handed over when it is full or its timer
// retires it, so a lone frame waits up to the block timeout; a V2 ring has
// one fixed-size slot per frame, each handed over as soon as it is written,
// and a V2 Block is the run of ready slots at the ring's cursor.
//
// With Config.VnetHdr the kernel puts a 10-byte struct virtio_net_hdr in
// front of every frame (Frame.Vnet) describing GSO super-frames and partial
// checksums, and every transmitted buffer must start with such a header: a
// received frame forwarded with its header (Frame.Raw) is segmented and
// checksummed by the kernel on the way out.
//
// The block and slot walkers are plain Go over a byte slice and are tested
// without root; the socket code is Linux only (ring_other.go makes Open fail
// elsewhere).
package ring
