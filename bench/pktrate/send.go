package pktrate

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"webswitch/bench/testbed"
	"webswitch/ring"
)

// dropAll is a classic BPF program that accepts no frame: the sender's ring
// receives nothing.
var dropAll = []ring.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

// OpenSender opens, in the namespace of host, an AF_PACKET socket on eth0
// that sends with PACKET_QDISC_BYPASS and receives nothing: a ring of one
// page behind a filter that drops every frame.
func OpenSender(tb *testbed.Testbed, host string) (*ring.Ring, error) {
	var r *ring.Ring
	err := tb.Do(host, func() error {
		var err error
		r, err = ring.Open(ring.Config{
			Interface:   "eth0",
			Version:     3, // a V2 slot holds a 64 KiB frame; a V3 block can be a page
			BlockSize:   os.Getpagesize(),
			NumBlocks:   1,
			Filter:      dropAll,
			QdiscBypass: true,
		})
		return err
	})
	return r, err
}

// SendStats is what Send measured.
type SendStats struct {
	Sent    uint64        // frames the kernel took
	Errors  uint64        // frames not sent (the sum of ring.SenderStats' error counts)
	Elapsed time.Duration // from the first sendmmsg to the end of the last
	CPU     time.Duration // CPU time of the sending thread, user and system
}

// Send sends frames out of r, batch frames per sendmmsg(2), for d or until
// ctx is done: at full speed, or at rate frames per second when rate > 0.
// Each call of add must queue one frame on the Sender it is given (with
// Add, or Buffer then Add). batch must be within 1..MaxBatch, so that every
// frame queued is flushed by the time Send returns. Send must run on a
// locked OS thread (as in testbed.Do), whose CPU time it measures.
func Send(ctx context.Context, r *ring.Ring, batch int, d time.Duration, rate float64, add func(*ring.Sender)) SendStats {
	snd := r.NewSender(batch)
	pause := time.NewTimer(d) // reset before every wait
	defer pause.Stop()
	cpu0 := threadCPU()
	start := time.Now()
	var queued uint64
	for {
		for range batch {
			add(snd) // a full batch is flushed
		}
		queued += uint64(batch)
		now := time.Since(start)
		if now >= d || ctx.Err() != nil {
			break
		}
		if rate > 0 {
			// The next batch is due when the rate allows it, at the latest
			// at the end.
			if due := min(time.Duration(float64(queued)/rate*float64(time.Second)), d); due > now {
				pause.Reset(due - now)
				select {
				case <-pause.C:
				case <-ctx.Done():
				}
			}
		}
	}
	elapsed := time.Since(start)
	st := snd.Stats()
	return SendStats{
		Sent:    st.Sent,
		Errors:  st.Again + st.NoBufs + st.MsgSize + st.Other,
		Elapsed: elapsed,
		CPU:     threadCPU() - cpu0,
	}
}

// roundRobin returns an add function for Send that queues the frames
// (FrameLen bytes each, back to back) in turn, without copying them.
func roundRobin(frames []byte) func(*ring.Sender) {
	off := 0
	return func(snd *ring.Sender) {
		snd.Add(frames[off : off+FrameLen])
		off += FrameLen
		if off == len(frames) {
			off = 0
		}
	}
}

// pinToLastCPU binds the calling OS thread to the machine's last CPU, away
// from shard 0's (the switch pins shard i to CPU i).
func pinToLastCPU() error {
	var set unix.CPUSet
	set.Set(runtime.NumCPU() - 1)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pktrate: sched_setaffinity: %w", err)
	}
	return nil
}

// threadCPU returns the CPU time of the calling thread, user and system.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
