package shard

import "webswitch/ring"

// Link is a shard's port to the network: where its frames come from and
// go. The real one is a ring of a fanout group with its TX path
// (ringLink); the tests use an in-memory one, so that the loop itself runs
// without root or a network.
type Link interface {
	// Fd is the descriptor the loop polls for received frames, or -1:
	// the link has none and is read every round.
	Fd() int
	// Receive hands every frame that has arrived to sink.frame, block by
	// block, and calls sink.endBlock after each block, before the block's
	// memory goes back to the kernel.
	Receive(sink frameSink)
	// The TX path: Buffer returns room for a frame the shard builds, Add
	// queues a frame (built in a Buffer, or a received one forwarded),
	// Flush sends what is queued.
	Add(frame []byte)
	Buffer(n int) []byte
	Flush() (int, error)
	Stats() ring.SenderStats
}

// frameSink takes the frames a Link receives: the shard.
type frameSink interface {
	frame(f *ring.Frame)
	endBlock(corrupt bool)
}

// ringLink is a Link on a packet ring and its sender.
type ringLink struct {
	r *ring.Ring
	*ring.Sender
	f ring.Frame // reused: Receive allocates nothing
}

func newRingLink(r *ring.Ring, batch int) *ringLink {
	return &ringLink{r: r, Sender: r.NewSender(batch)}
}

func (l *ringLink) Fd() int { return l.r.Fd() }

func (l *ringLink) Receive(sink frameSink) {
	for b, ok := l.r.NextBlock(); ok; b, ok = l.r.NextBlock() {
		for b.Next(&l.f) {
			sink.frame(&l.f)
		}
		sink.endBlock(b.Corrupt())
		l.r.Release(b)
	}
}
