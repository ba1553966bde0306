package shard

import (
	"context"
	"sync/atomic"
	"time"
)

// CapturedFrame is a frame a shard received, with the time it saw it.
type CapturedFrame struct {
	Time time.Time
	Data []byte
}

// capture collects copies of the frames the shards receive, up to a count.
type capture struct {
	left    atomic.Int64 // frames still wanted
	frames  chan CapturedFrame
	dropped atomic.Uint64 // frames missed because the reader was behind
}

// add copies frame in if more are wanted and there is room; the shard's
// loop calls it for every frame while a capture runs.
func (c *capture) add(frame []byte) {
	if c.left.Add(-1) < 0 {
		return
	}
	select {
	case c.frames <- CapturedFrame{Time: time.Now(), Data: append([]byte(nil), frame...)}:
	default:
		c.dropped.Add(1)
	}
}

// captureQueue bounds the frames waiting for the reader.
const captureQueue = 4096

// Capture copies the next n frames the shards receive (every frame of the
// ring, before any check) to write, in the order they are handed over,
// until n were written, ctx ends or write fails. It returns the frames
// written and those missed because write was slower than the traffic. One
// capture runs at a time; a second one waits for the first.
func (sw *Switch) Capture(ctx context.Context, n int, write func(CapturedFrame) error) (written int, missed uint64, err error) {
	sw.captureMu.Lock()
	defer sw.captureMu.Unlock()
	c := &capture{frames: make(chan CapturedFrame, min(n, captureQueue))}
	c.left.Store(int64(n))
	for _, s := range sw.shards {
		s.capture.Store(c)
	}
	defer func() {
		for _, s := range sw.shards {
			s.capture.Store(nil)
		}
	}()
	for written < n {
		select {
		case f := <-c.frames:
			if err := write(f); err != nil {
				return written, c.dropped.Load(), err
			}
			written++
		case <-ctx.Done():
			return written, c.dropped.Load(), ctx.Err()
		}
	}
	return written, c.dropped.Load(), nil
}
