package recovery

import (
	"time"

	"webswitch/bench/pktrate"
	"webswitch/ring"
)

// sent is what sendFrames did.
type sent struct {
	stats ring.SenderStats
	first time.Time     // just before the first sendmmsg(2)
	took  time.Duration // from first to the end of the last
}

// sendFrames sends every frame of frames (pktrate.FrameLen bytes each,
// back to back) once out of r, batch frames per sendmmsg(2): at full
// speed, or at rate frames per second when rate > 0. Unlike pktrate.Send,
// which sends for a time, it sends a given set once.
func sendFrames(r *ring.Ring, frames []byte, batch int, rate float64) sent {
	snd := r.NewSender(batch)
	out := sent{first: time.Now()}
	n := 0
	for off := 0; off < len(frames); off += pktrate.FrameLen {
		snd.Add(frames[off : off+pktrate.FrameLen]) // a full batch is flushed
		n++
		if rate > 0 && n%batch == 0 {
			due := out.first.Add(time.Duration(float64(n) / rate * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
	}
	snd.Flush()
	out.took = time.Since(out.first)
	out.stats = snd.Stats()
	return out
}
