package attack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"webswitch/bench/load"
	"webswitch/bench/pktrate"
	"webswitch/bench/procstat"
	"webswitch/bench/site"
)

// Defaults for zero SYNFloodTrialConfig fields.
const (
	trialConnections = 8
	trialWarmup      = time.Second
	trialTimeout     = 2 * time.Second
)

// trialRSSEvery is how often SYNFloodTrial samples the switch's resident
// memory.
const trialRSSEvery = 250 * time.Millisecond

// SYNFloodTrialConfig describes a trial: a SYN flood against a site while a
// real client fetches a page through the switch, a new connection per
// request, so that every request needs a handshake through the flood. The
// client starts with the flood and measures for Flood.Duration less twice
// Warmup, after its warm-up: its measured requests all run during the
// flood.
type SYNFloodTrialConfig struct {
	Flood       SYNFloodConfig // the flood; Flood.TB is the site's testbed
	Wsbench     string         // the wsbench binary, whose "wsbench load" is the client (required)
	URL         string         // the page the client fetches, through the VIP (required)
	Connections int            // client connections (default 8)
	Warmup      time.Duration  // the client's unmeasured start (default 1 s)
	// Timeout is the client's time limit for one request, connecting
	// included: a slower request counts as failed (default 2 s, time for one
	// SYN retransmission of the client's kernel, after 1 s).
	Timeout time.Duration
}

// withDefaults returns c with zero fields replaced by the defaults, or an
// error if a field is out of range.
func (c SYNFloodTrialConfig) withDefaults(s *site.Site) (SYNFloodTrialConfig, error) {
	c.Flood.TB = s.TB
	var err error
	if c.Flood, err = c.Flood.withDefaults(); err != nil {
		return c, err
	}
	if c.Connections == 0 {
		c.Connections = trialConnections
	}
	if c.Warmup == 0 {
		c.Warmup = trialWarmup
	}
	if c.Timeout == 0 {
		c.Timeout = trialTimeout
	}
	if c.Wsbench == "" || c.URL == "" || c.Connections < 0 || c.Warmup < 0 || c.Timeout < 0 || c.loadDuration() <= 0 {
		return c, fmt.Errorf("%w: %+v (the flood must last more than twice the warm-up)", ErrConfig, c)
	}
	return c, nil
}

// loadDuration is the client's measured time.
func (c *SYNFloodTrialConfig) loadDuration() time.Duration {
	return c.Flood.Duration - 2*c.Warmup
}

// SYNFloodTrialResult is the outcome of a trial. The switch's counters are
// summed over its shards, from just before the flood to just after it.
type SYNFloodTrialResult struct {
	Flood SYNFloodResult `json:"flood"`
	Load  load.Result    `json:"load"` // the real client's run
	// Success is the share of the client's measured requests that
	// succeeded: Load.Requests / (Load.Requests + all Load.Errors).
	Success    float64 `json:"success"`
	SYNAcks    uint64  `json:"syn_acks"`       // SYN-ACKs the switch sent: the flood's and the client's
	SYNAckRate float64 `json:"syn_acks_per_s"` // SYNAcks per second of the flood
	FramesIn   uint64  `json:"frames_in"`      // frames the shards took from their rings
	RingDrops  uint64  `json:"ring_drops"`     // frames the kernel dropped because a shard's ring was full
	TxDropped  uint64  `json:"tx_dropped"`     // frames the shards' transmit path refused
	Flows      uint64  `json:"flows"`          // connections the switch accepted (a valid cookie)
	// ActiveFlowsBefore and ActiveFlowsAfter are the switch's flow table
	// entries before and right after the flood (spliced flows are kept
	// for switch.linger after their FIN).
	ActiveFlowsBefore int64 `json:"active_flows_before"`
	ActiveFlowsAfter  int64 `json:"active_flows_after"`
	// The switch's resident memory in bytes: before the flood, the most
	// seen during it (sampled every 250 ms), and right after it.
	RSSBefore int64 `json:"rss_before"`
	RSSMax    int64 `json:"rss_max"`
	RSSAfter  int64 `json:"rss_after"`
	// CPU used during the flood, in cores (CPU seconds per second): by the
	// webswitch process, and by the whole machine (all CPUs' busy time,
	// interrupts and softirqs included), of NumCPU.
	SwitchCPU  float64 `json:"switch_cpu"`
	MachineCPU float64 `json:"machine_cpu"`
	NumCPU     int     `json:"num_cpu"`
}

// SYNFloodTrial floods the site's switch (see SYNFloodTrialConfig) and
// returns what it measured. It adds the attacker host to the testbed if the
// flood comes from it and the testbed does not have it yet. The client runs
// its full time even if ctx ends the flood early.
func SYNFloodTrial(ctx context.Context, s *site.Site, cfg SYNFloodTrialConfig) (res SYNFloodTrialResult, err error) {
	if cfg, err = cfg.withDefaults(s); err != nil {
		return res, err
	}
	if cfg.Flood.Host == floodHost && s.TB.NS(floodHost) == "" {
		if err := s.TB.AddAttacker(); err != nil {
			return res, err
		}
	}
	pid := s.Switch.Cmd.Process.Pid
	before, err := s.ShardCounters()
	if err != nil {
		return res, err
	}
	if res.RSSBefore, err = procstat.RSS(pid); err != nil {
		return res, err
	}
	logPath := filepath.Join(s.Dir, "synflood-load.log")
	client, err := s.TB.Start("cli", logPath, cfg.Wsbench, "load", "-json", "-url", cfg.URL,
		"-c", strconv.Itoa(cfg.Connections), "-keepalive=false", "-warmup", cfg.Warmup.String(),
		"-d", cfg.loadDuration().String(), "-timeout", cfg.Timeout.String())
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			client.Stop()
		}
	}()

	cpu0, err := pktrate.ReadCPU(s)
	if err != nil {
		return res, err
	}
	done := make(chan struct{})
	var sampler sync.WaitGroup
	var rssErr error
	res.RSSMax = res.RSSBefore
	sampler.Go(func() {
		tick := time.NewTicker(trialRSSEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				rss, err := procstat.RSS(pid)
				if err != nil {
					rssErr = err
					return
				}
				res.RSSMax = max(res.RSSMax, rss)
			}
		}
	})
	res.Flood, err = SYNFlood(ctx, cfg.Flood)
	close(done)
	sampler.Wait()
	if err = errors.Join(err, rssErr); err != nil {
		return res, err
	}
	cpu1, err := pktrate.ReadCPU(s)
	if err != nil {
		return res, err
	}
	res.SwitchCPU = (cpu1.Switch - cpu0.Switch).Seconds() / res.Flood.Seconds
	res.MachineCPU = (cpu1.Machine - cpu0.Machine).Seconds() / res.Flood.Seconds
	res.NumCPU = cpu1.NumCPU
	if res.RSSAfter, err = procstat.RSS(pid); err != nil {
		return res, err
	}
	res.RSSMax = max(res.RSSMax, res.RSSAfter)
	after, err := s.ShardCounters()
	if err != nil {
		return res, err
	}
	if err := client.Wait(); err != nil {
		return res, fmt.Errorf("attack: the client failed: %w", err)
	}
	out, err := os.ReadFile(logPath)
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal(out, &res.Load); err != nil {
		return res, fmt.Errorf("attack: the client's output (%s): %w", logPath, err)
	}
	res.Success = successRate(&res.Load)
	res.countersDelta(before, after)
	return res, nil
}

// successRate returns the share of the measured requests of r that
// succeeded; 0 when there were none.
func successRate(r *load.Result) float64 {
	failed := uint64(0)
	for _, n := range r.Errors {
		failed += n
	}
	if r.Requests+failed == 0 {
		return 0
	}
	return float64(r.Requests) / float64(r.Requests+failed)
}

// countersDelta fills in the switch's counters from its shards' counters
// before and after the flood, as site.ShardCounters returns them.
func (res *SYNFloodTrialResult) countersDelta(before, after map[int]map[string]any) {
	delta := func(key string) uint64 {
		return uint64(max(0, sum(after, key)-sum(before, key)))
	}
	res.SYNAcks = delta("syn_acks")
	res.SYNAckRate = float64(res.SYNAcks) / res.Flood.Seconds
	res.FramesIn = delta("frames_in")
	res.RingDrops = delta("ring_drops")
	res.TxDropped = delta("tx_dropped")
	res.Flows = delta("flows")
	res.ActiveFlowsBefore = int64(sum(before, "active_flows"))
	res.ActiveFlowsAfter = int64(sum(after, "active_flows"))
}

// sum adds up the counter key over the shards; a missing counter counts 0.
func sum(shards map[int]map[string]any, key string) float64 {
	var n float64
	for _, c := range shards {
		v, _ := c[key].(float64)
		n += v
	}
	return n
}
