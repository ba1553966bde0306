package attack

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"webswitch/bench/load"
	"webswitch/bench/procstat"
	"webswitch/bench/site"
)

// Defaults for zero FloodTrialConfig fields.
const (
	trialConnections = 8
	trialWarmup      = time.Second
	trialTimeout     = 2 * time.Second
)

// trialRSSEvery is how often FloodTrial samples the resident memory of the
// switch and the agents.
const trialRSSEvery = 250 * time.Millisecond

// FloodTrialConfig describes a trial: a flood against a site while a real
// client fetches a page through the switch, a new connection per request,
// so that every request needs a handshake through the flood. The client
// starts with the flood and measures for Flood.Duration less twice Warmup,
// after its warm-up: its measured requests all run during the flood.
type FloodTrialConfig struct {
	Flood       FloodConfig   // the flood; Flood.TB is the site's testbed
	Wsbench     string        // the wsbench binary, whose "wsbench load" is the client (required)
	URL         string        // the page the client fetches, through the VIP (required)
	Connections int           // client connections (default 8)
	Warmup      time.Duration // the client's unmeasured start (default 1 s)
	// Timeout is the client's time limit for one request, connecting
	// included: a slower request counts as failed (default 2 s, time for one
	// SYN retransmission of the client's kernel, after 1 s).
	Timeout time.Duration
}

// withDefaults returns c with zero fields replaced by the defaults, or an
// error if a field is out of range.
func (c FloodTrialConfig) withDefaults(s *site.Site) (FloodTrialConfig, error) {
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
func (c *FloodTrialConfig) loadDuration() time.Duration {
	return c.Flood.Duration - 2*c.Warmup
}

// ProcUsage is what one process used during a flood.
type ProcUsage struct {
	PID int     `json:"pid"`
	CPU float64 `json:"cpu"` // in cores: CPU seconds (user and system) per second
	// Resident memory in bytes: before the flood, the most seen during it
	// (sampled every 250 ms), and right after it.
	RSSBefore int64 `json:"rss_before"`
	RSSMax    int64 `json:"rss_max"`
	RSSAfter  int64 `json:"rss_after"`
}

// RSSGrowth is how much more resident memory the process had at most
// during the flood than before it.
func (u *ProcUsage) RSSGrowth() int64 { return u.RSSMax - u.RSSBefore }

// FloodTrialResult is the outcome of a trial. The switch's counters are
// summed over its shards, from just before the flood to just after it.
type FloodTrialResult struct {
	Flood FloodResult `json:"flood"`
	Load  load.Result `json:"load"` // the real client's run
	// Success is the share of the client's measured requests that
	// succeeded: Load.Requests / (Load.Requests + all Load.Errors).
	Success    float64 `json:"success"`
	SYNAcks    uint64  `json:"syn_acks"`       // SYN-ACKs the switch sent: a SYN flood's and the client's
	SYNAckRate float64 `json:"syn_acks_per_s"` // SYNAcks per second of the flood
	FramesIn   uint64  `json:"frames_in"`      // frames the shards took from their rings
	RingDrops  uint64  `json:"ring_drops"`     // frames the kernel dropped because a shard's ring was full
	TxDropped  uint64  `json:"tx_dropped"`     // frames the shards' transmit path refused
	Flows      uint64  `json:"flows"`          // connections the switch accepted (a valid cookie)
	Resets     uint64  `json:"resets"`         // RSTs the switch sent (to an ACK flood's bare ACKs no agent holds)
	// ActiveFlowsBefore and ActiveFlowsAfter are the switch's flow table
	// entries before and right after the flood (spliced flows are kept
	// for switch.linger after their FIN).
	ActiveFlowsBefore int64 `json:"active_flows_before"`
	ActiveFlowsAfter  int64 `json:"active_flows_after"`
	// Flow recovery, the path of an ACK flood's segments (connections the
	// switch has no entry for): the connections it asked its agents about,
	// the LOOKUPs it sent (one per agent per batch of up to 64
	// connections), each per second of the flood, and the LOOKUPs an agent
	// did not answer in time.
	RecoveryAsked      uint64  `json:"recovery_asked"`
	RecoveryAskedRate  float64 `json:"recovery_asked_per_s"`
	RecoveryQueries    uint64  `json:"recovery_queries"`
	RecoveryQueryRate  float64 `json:"recovery_queries_per_s"`
	RecoveryUnanswered uint64  `json:"recovery_unanswered"`
	// Drops are the frames the switch dropped, by reason (the names of
	// shard.Drop: recovery_rate, recovery_full, no_owner ...).
	Drops map[string]uint64 `json:"drops,omitempty"`
	// What the switch and each agent (be1's, be2's) used during the flood,
	// and the whole machine's CPU in cores (all CPUs' busy time,
	// interrupts and softirqs included), of NumCPU.
	Switch     ProcUsage   `json:"switch"`
	Agents     []ProcUsage `json:"agents"`
	MachineCPU float64     `json:"machine_cpu"`
	NumCPU     int         `json:"num_cpu"`
}

// FloodTrial floods the site's switch (see FloodTrialConfig) and returns
// what it measured. It adds the attacker host to the testbed if the flood
// comes from it and the testbed does not have it yet. The client runs its
// full time even if ctx ends the flood early.
func FloodTrial(ctx context.Context, s *site.Site, cfg FloodTrialConfig) (res FloodTrialResult, err error) {
	if cfg, err = cfg.withDefaults(s); err != nil {
		return res, err
	}
	if cfg.Flood.Host == floodHost && s.TB.NS(floodHost) == "" {
		if err := s.TB.AddAttacker(); err != nil {
			return res, err
		}
	}
	agents, err := agentPIDs(s)
	if err != nil {
		return res, err
	}
	before, err := s.ShardCounters()
	if err != nil {
		return res, err
	}
	logPath := filepath.Join(s.Dir, cfg.Flood.Kind.String()+"flood-load.log")
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
	if err := res.measure(s.Switch.Cmd.Process.Pid, agents, func() (err error) {
		res.Flood, err = Flood(ctx, cfg.Flood)
		return err
	}); err != nil {
		return res, err
	}
	after, err := s.ShardCounters()
	if err != nil {
		return res, err
	}
	if err := client.Wait(); err != nil {
		return res, fmt.Errorf("attack: the client failed: %w", err)
	}
	if res.Load, err = load.ReadResult(logPath); err != nil {
		return res, err
	}
	res.Success = successRate(&res.Load)
	res.countersDelta(before, after)
	return res, nil
}

// agentPIDs returns the PID of each of the site's agents: the serving
// process its PID file names (an upgraded handoffd's is not the process the
// site started), or without the file (an Agent2 command), the process the
// site started.
func agentPIDs(s *site.Site) ([]int, error) {
	pids := make([]int, len(s.Agents))
	for i, a := range s.Agents {
		b, err := os.ReadFile(s.AgentPIDFile(i))
		if errors.Is(err, fs.ErrNotExist) {
			pids[i] = a.Cmd.Process.Pid
			continue
		}
		if err != nil {
			return nil, err
		}
		if pids[i], err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return nil, fmt.Errorf("attack: PID file %s: %w", s.AgentPIDFile(i), err)
		}
	}
	return pids, nil
}

// measure runs fn, the flood, and fills in what the switch (process pid),
// the agents (processes agents) and the machine used meanwhile: CPU over
// fn's run, resident memory before, after and sampled every trialRSSEvery.
func (res *FloodTrialResult) measure(pid int, agents []int, fn func() error) error {
	res.Switch = ProcUsage{PID: pid}
	res.Agents = make([]ProcUsage, len(agents))
	procs := []*ProcUsage{&res.Switch}
	for i, p := range agents {
		res.Agents[i].PID = p
		procs = append(procs, &res.Agents[i])
	}
	cpu0 := make([]time.Duration, len(procs))
	for i, u := range procs {
		var err error
		if cpu0[i], err = procstat.Process(u.PID); err != nil {
			return err
		}
		if u.RSSBefore, err = procstat.RSS(u.PID); err != nil {
			return err
		}
		u.RSSMax = u.RSSBefore
	}
	machine0, _, err := procstat.Machine()
	if err != nil {
		return err
	}
	start := time.Now()
	done := make(chan struct{})
	var sampler sync.WaitGroup
	var rssErr error
	sampler.Go(func() {
		tick := time.NewTicker(trialRSSEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if rssErr = sampleRSS(procs); rssErr != nil {
					return
				}
			}
		}
	})
	err = fn()
	close(done)
	sampler.Wait()
	if err = errors.Join(err, rssErr); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	machine1, cpus, err := procstat.Machine()
	if err != nil {
		return err
	}
	res.MachineCPU, res.NumCPU = (machine1-machine0).Seconds()/secs, cpus
	for i, u := range procs {
		cpu1, err := procstat.Process(u.PID)
		if err != nil {
			return err
		}
		u.CPU = (cpu1 - cpu0[i]).Seconds() / secs
		if u.RSSAfter, err = procstat.RSS(u.PID); err != nil {
			return err
		}
		u.RSSMax = max(u.RSSMax, u.RSSAfter)
	}
	return nil
}

// sampleRSS raises each process's RSSMax to its resident memory now.
func sampleRSS(procs []*ProcUsage) error {
	for _, u := range procs {
		rss, err := procstat.RSS(u.PID)
		if err != nil {
			return err
		}
		u.RSSMax = max(u.RSSMax, rss)
	}
	return nil
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
func (res *FloodTrialResult) countersDelta(before, after map[int]map[string]any) {
	delta := func(key string) uint64 {
		return uint64(max(0, sum(after, key)-sum(before, key)))
	}
	perSecond := func(n uint64) float64 { return float64(n) / res.Flood.Seconds }
	res.SYNAcks = delta("syn_acks")
	res.SYNAckRate = perSecond(res.SYNAcks)
	res.FramesIn = delta("frames_in")
	res.RingDrops = delta("ring_drops")
	res.TxDropped = delta("tx_dropped")
	res.Flows = delta("flows")
	res.Resets = delta("resets")
	res.ActiveFlowsBefore = int64(sum(before, "active_flows"))
	res.ActiveFlowsAfter = int64(sum(after, "active_flows"))
	res.RecoveryAsked = delta("recovery_asked")
	res.RecoveryAskedRate = perSecond(res.RecoveryAsked)
	res.RecoveryQueries = delta("recovery_queries")
	res.RecoveryQueryRate = perSecond(res.RecoveryQueries)
	res.RecoveryUnanswered = delta("recovery_unanswered")
	res.Drops = nil
	for _, c := range after {
		drops, _ := c["drops"].(map[string]any)
		for reason := range drops {
			if n := uint64(max(0, sumIn(after, "drops", reason)-sumIn(before, "drops", reason))); n > 0 {
				if res.Drops == nil {
					res.Drops = map[string]uint64{}
				}
				res.Drops[reason] = n
			}
		}
	}
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
