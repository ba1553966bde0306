package pktrate

import (
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

// openSender opens, in the client namespace, an AF_PACKET socket on eth0
// that sends with PACKET_QDISC_BYPASS and receives nothing: a ring of one
// page behind a filter that drops every frame.
func openSender(tb *testbed.Testbed) (*ring.Ring, error) {
	var r *ring.Ring
	err := tb.Do("cli", func() error {
		var err error
		r, err = ring.Open(ring.Config{
			Interface:   "eth0",
			BlockSize:   os.Getpagesize(),
			NumBlocks:   1,
			Filter:      dropAll,
			QdiscBypass: true,
		})
		return err
	})
	return r, err
}

// sendStats is what blast measured.
type sendStats struct {
	sent, errors uint64        // frames the kernel took; frames not sent (ring.SenderStats' error counts)
	elapsed      time.Duration // from the first sendmmsg to the end of the last
	cpu          time.Duration // CPU time of the sending thread, user and system
}

// blast sends the frames (FrameLen bytes each, back to back) round-robin,
// batch frames per sendmmsg(2), for d: at full speed, or at rate frames per
// second when rate > 0. batch must be within 1..MaxBatch, so that every
// frame added is flushed by the time it returns. It must run on a locked OS thread (as in
// testbed.Do), whose CPU time it measures.
func blast(r *ring.Ring, frames []byte, batch int, d time.Duration, rate float64) sendStats {
	snd := r.NewSender(batch)
	cpu0 := threadCPU()
	start := time.Now()
	var queued uint64
	off := 0
	for {
		for range batch {
			snd.Add(frames[off : off+FrameLen]) // a full batch is flushed
			off += FrameLen
			if off == len(frames) {
				off = 0
			}
		}
		queued += uint64(batch)
		now := time.Since(start)
		if now >= d {
			break
		}
		if rate > 0 {
			if due := time.Duration(float64(queued) / rate * float64(time.Second)); due > now {
				time.Sleep(due - now)
			}
		}
	}
	elapsed := time.Since(start)
	st := snd.Stats()
	return sendStats{
		sent:    st.Sent,
		errors:  st.Again + st.NoBufs + st.MsgSize + st.Other,
		elapsed: elapsed,
		cpu:     threadCPU() - cpu0,
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
