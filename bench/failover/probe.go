package failover

import (
	"bytes"
	"io"
	"net"
	"time"

	"webswitch/bench/testbed"
)

// probeTimeout is a probe's time limit, connecting included: well under
// the client kernel's first SYN retransmission (1 s), so that a lost SYN
// makes the probe fail and the next one try a new connection.
const probeTimeout = 200 * time.Millisecond

// sample is one probe request: when it started, how long it took, and
// whether it got a 200.
type sample struct {
	start time.Time
	took  time.Duration
	ok    bool
}

// probe sends GET path to the VIP, a new connection each, one after the
// other, from the client namespace, until stop is closed, and returns
// them all.
func probe(tb *testbed.Testbed, path string, stop <-chan struct{}) ([]sample, error) {
	var samples []sample
	err := tb.Do("cli", func() error {
		req := []byte("GET " + path + " HTTP/1.0\r\nHost: " + testbed.VIP + "\r\n\r\n")
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			start := time.Now()
			ok := probeOnce(req, start.Add(probeTimeout))
			samples = append(samples, sample{start: start, took: time.Since(start), ok: ok})
			if !ok {
				// A refused connection fails at once: do not spin.
				time.Sleep(time.Until(start.Add(probeTimeout / 4)))
			}
		}
	})
	return samples, err
}

// probeOnce makes one request on a new connection, on this thread (in the
// client namespace), and reports whether it got a 200 and the whole
// response before the deadline.
func probeOnce(req []byte, deadline time.Time) bool {
	d := net.Dialer{Deadline: deadline}
	c, err := d.Dial("tcp", testbed.VIP+":80")
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := c.Write(req); err != nil {
		return false
	}
	resp, err := io.ReadAll(c)
	return err == nil && (bytes.HasPrefix(resp, []byte("HTTP/1.1 200 ")) || bytes.HasPrefix(resp, []byte("HTTP/1.0 200 ")))
}

// outage returns the time from kill to the end of the first probe that
// succeeded after the last one that failed, 0 if none failed after kill
// (to the end of the last probe if none succeeded after it: recovered is
// false); and how many probes ending after kill failed.
func outage(samples []sample, kill time.Time) (d time.Duration, failed int, recovered bool) {
	lastFail := -1
	for i, s := range samples {
		if !s.ok && !s.start.Add(s.took).Before(kill) {
			failed++
			lastFail = i
		}
	}
	if lastFail < 0 {
		return 0, 0, true
	}
	for _, s := range samples[lastFail+1:] {
		if s.ok {
			return s.start.Add(s.took).Sub(kill), failed, true
		}
	}
	// Never recovered while probing: up to the last probe.
	last := samples[len(samples)-1]
	return last.start.Add(last.took).Sub(kill), failed, false
}
