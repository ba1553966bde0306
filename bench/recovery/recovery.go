// Package recovery measures flow recovery (issue 11): how many spliced
// flows per second a switch that has no entry for them recovers from the
// agents, and how long a restarted switch takes to recover its first flow.
//
// Run makes N spliced connections exist without N clients: on each
// back-end, in its namespace, holder processes (Hold) re-create
// connections with TCP_REPAIR exactly as handoffd re-creates a handed-off
// one (agent.Recreate), for client addresses of the LAN that no host has.
// The switch has never seen them, so it is as fresh for them as a
// restarted one. From the attacker
// host Run then sends one ACK per connection (spoofed source, batched
// AF_PACKET sends): the switch holds each, asks the agents (LOOKUP) and
// forwards it to the owner. A socket whose one outstanding byte (sent by
// Recreate) got acknowledged has had its ACK forwarded; the ACKs of the
// others were dropped (recovery_full, recovery_rate, a full ring) and are
// sent again, pass after pass, as their clients would retransmit them,
// until every connection is recovered or a pass recovers none. The
// switch's /metrics is polled every few milliseconds meanwhile.
//
// Restart kills the switch (SIGKILL) during a download through it, starts
// it again, and measures the time from the start to its first recovered
// flow.
package recovery

import (
	"errors"
	"fmt"
	"net"
	"time"

	"webswitch/bench/pktrate"
	"webswitch/bench/procstat"
	"webswitch/bench/site"
	"webswitch/bench/testbed"
	"webswitch/ring"
)

// Defaults for zero Config fields.
const (
	DefaultFlows        = 10000
	DefaultAgents       = 2
	DefaultShards       = 2
	DefaultRecoveryRate = 50000 // the switch's own default of switch.recovery_rate
	defaultBatch        = 256
	defaultPasses       = 1000
)

// Polling of the switch's counters.
const (
	pollEvery   = 5 * time.Millisecond
	settleQuiet = 100 * time.Millisecond // no recovery counter moved for this long: a pass is over
	passTimeout = time.Minute
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("recovery: invalid config")

// Config describes a run. Zero fields take the defaults.
type Config struct {
	Flows  int // connections to recover (default 10000, at most MaxFlows)
	Agents int // back-ends holding them, 1 or 2: be1, be2 (default 2); the switch asks both
	// Shards and RecoveryRate are the switch's shards and
	// switch.recovery_rate (SiteConfig): reported, not set, by Run.
	Shards       int
	RecoveryRate int
	SendRate     float64 // ACKs per second offered; 0: as fast as the sender can
	Batch        int     // frames per sendmmsg(2) call, at most pktrate.MaxBatch (default 256)
	MaxPasses    int     // passes at most (default 1000)
	// Holder is the command that runs Hold, the program and the
	// arguments before Hold's, such as {"wsbench", "recovery-hold"}
	// (required).
	Holder []string
}

// withDefaults returns c with zero fields replaced by the defaults, or an
// error if a field is out of range.
func (c Config) withDefaults() (Config, error) {
	if c.Flows == 0 {
		c.Flows = DefaultFlows
	}
	if c.Agents == 0 {
		c.Agents = DefaultAgents
	}
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	if c.RecoveryRate == 0 {
		c.RecoveryRate = DefaultRecoveryRate
	}
	if c.Batch == 0 {
		c.Batch = defaultBatch
	}
	if c.MaxPasses == 0 {
		c.MaxPasses = defaultPasses
	}
	if err := checkFlows(c.Flows); err != nil {
		return c, err
	}
	if len(c.Holder) == 0 || c.Agents < 1 || c.Agents > 2 || c.Shards < 1 || c.RecoveryRate < 1 || !(c.SendRate >= 0) ||
		c.Batch < 1 || c.Batch > pktrate.MaxBatch || c.MaxPasses < 1 {
		return c, fmt.Errorf("%w: %+v", ErrConfig, c)
	}
	return c, nil
}

// SiteConfig returns the site Run and Restart need (BinDir, Dir and the
// document roots left to the caller): both back-ends in one pool, the
// admin API on AdminAddr, and the switch's shards and recovery_rate from
// cfg (zero: the defaults).
func SiteConfig(cfg Config) site.Config {
	cfg, _ = cfg.withDefaults() // only Shards and RecoveryRate matter here
	return site.Config{
		Balanced: true, Offloads: true, Shards: cfg.Shards,
		SwitchKeys: fmt.Sprintf("recovery_rate = %d\n[admin]\nlisten = %q\n", cfg.RecoveryRate, AdminAddr),
	}
}

// Pass is one sending of the ACKs of the connections not yet recovered.
type Pass struct {
	Flows      int     `json:"flows"` // connections whose ACK it sent
	Sent       uint64  `json:"sent"`  // ACKs the sending host's kernel took
	SendErrors uint64  `json:"send_errors"`
	SendSecs   float64 `json:"send_seconds"` // how long sending took
	// Seconds is from its first ACK sent to the last flow recovered,
	// as seen by the polls (within pollEvery); 0 if none was.
	Seconds   float64  `json:"seconds"`
	Recovered uint64   `json:"recovered"` // flows recovered by lookup in it
	Switch    Counters `json:"switch"`    // the switch's counters over the pass
}

// Result is the outcome of a run.
type Result struct {
	Flows        int     `json:"flows"`
	Agents       int     `json:"agents"` // back-ends holding the connections
	Shards       int     `json:"shards"`
	RecoveryRate int     `json:"recovery_rate"`
	SendRate     float64 `json:"send_rate"` // 0: full speed
	// CreateSecs is how long re-creating the connections took; the
	// memory they took: the machine's MemAvailable drop and Slab growth
	// (other processes on the machine blur both), and the resident
	// memory of the Holders processes holding them, in bytes.
	CreateSecs   float64 `json:"create_seconds"`
	MemAvailDrop int64   `json:"mem_available_drop"`
	SlabGrowth   int64   `json:"slab_growth"`
	Holders      int     `json:"holders"`
	HolderRSS    int64   `json:"holder_rss"`

	Passes []Pass `json:"passes"`
	// FirstPassRate is the first pass's recovered flows per second of its
	// Seconds.
	FirstPassRate float64 `json:"first_pass_rate"`
	// TotalSecs is from the first ACK of the first pass to the last flow
	// recovered; Rate is Recovered per second of it: what it takes a
	// fresh switch to take the flows over when every lost segment is
	// retransmitted at once.
	TotalSecs float64 `json:"total_seconds"`
	// BusySecs is the sum of the passes' Seconds, leaving out the waits
	// between passes (each at least settleQuiet, for the counters to stop
	// moving); BusyRate is Recovered per second of it: the switch's
	// recovery capacity at this offered rate.
	BusySecs    float64  `json:"busy_seconds"`
	BusyRate    float64  `json:"busy_rate"`
	Recovered   uint64   `json:"recovered"`   // flows recovered by lookup, all passes
	Rate        float64  `json:"rate"`        // Recovered / TotalSecs
	Unrecovered int      `json:"unrecovered"` // connections whose ACK never reached their socket
	Switch      Counters `json:"switch"`      // the switch's counters over all passes

	// CPU time used from the first ACK to the end of the last pass, in
	// cores (CPU seconds per second of WallSecs): the switch, each agent
	// (be1, be2), and the whole machine, of NumCPU.
	WallSecs   float64   `json:"wall_seconds"`
	SwitchCPU  float64   `json:"switch_cpu"`
	AgentCPU   []float64 `json:"agent_cpu"`
	MachineCPU float64   `json:"machine_cpu"`
	NumCPU     int       `json:"num_cpu"`
}

// Run measures how fast the site's switch recovers cfg.Flows connections
// it never saw (see the package comment). The site must come from
// SiteConfig. It adds the attacker host to the testbed if it is not there.
// The connections are closed (reset) before it returns.
func Run(s *site.Site, cfg Config) (res Result, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return res, err
	}
	res = Result{Flows: cfg.Flows, Agents: cfg.Agents, Shards: cfg.Shards, RecoveryRate: cfg.RecoveryRate, SendRate: cfg.SendRate}
	if s.TB.NS("atk") == "" {
		if err := s.TB.AddAttacker(); err != nil {
			return res, err
		}
	}
	sc := newScraper(s.TB)
	defer sc.close()
	base, err := sc.scrape()
	if err != nil {
		return res, fmt.Errorf("recovery: the switch's /metrics (site from SiteConfig?): %w", err)
	}

	mem0, err := readMemInfo()
	if err != nil {
		return res, err
	}
	start := time.Now()
	h, err := hold(s.TB, cfg.Holder, cfg.Flows, cfg.Agents)
	if err != nil {
		return res, err
	}
	defer h.close()
	res.CreateSecs = time.Since(start).Seconds()
	mem1, err := readMemInfo()
	if err != nil {
		return res, err
	}
	res.MemAvailDrop = int64(mem0.available) - int64(mem1.available)
	res.SlabGrowth = int64(mem1.slab) - int64(mem0.slab)
	res.Holders = len(h.holders)
	if res.HolderRSS, err = h.rss(); err != nil {
		return res, err
	}

	snd, err := pktrate.OpenSender(s.TB, "atk")
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, snd.Close()) }()
	srcMAC, dstMAC, err := macs(s.TB, snd.HardwareAddr())
	if err != nil {
		return res, err
	}

	cpu0, err := readCPU(s)
	if err != nil {
		return res, err
	}
	pending := make([]int, cfg.Flows)
	for i := range pending {
		pending[i] = i
	}
	var first, last time.Time
	before := base
	for len(pending) > 0 && len(res.Passes) < cfg.MaxPasses {
		p, after, at, err := runPass(sc, snd, ackFrames(pending, srcMAC, dstMAC), cfg, before)
		if err != nil {
			return res, err
		}
		p.Flows = len(pending)
		if first.IsZero() {
			first = at.first
		}
		if !at.last.IsZero() {
			last = at.last
		}
		res.Passes = append(res.Passes, p)
		before = after
		left, err := h.pending()
		if err != nil {
			return res, err
		}
		progress := len(left) < len(pending)
		pending = left
		if !progress {
			break
		}
	}
	end := time.Now()
	cpu1, err := readCPU(s)
	if err != nil {
		return res, err
	}

	res.Switch = before.sub(base)
	res.Recovered = res.Switch.Lookup
	res.Unrecovered = len(pending)
	if p := res.Passes[0]; p.Seconds > 0 {
		res.FirstPassRate = float64(p.Recovered) / p.Seconds
	}
	if !last.IsZero() && last.After(first) {
		res.TotalSecs = last.Sub(first).Seconds()
		res.Rate = float64(res.Recovered) / res.TotalSecs
	}
	for _, p := range res.Passes {
		res.BusySecs += p.Seconds
	}
	if res.BusySecs > 0 {
		res.BusyRate = float64(res.Recovered) / res.BusySecs
	}
	res.WallSecs = end.Sub(first).Seconds()
	res.SwitchCPU = (cpu1.Switch - cpu0.Switch).Seconds() / res.WallSecs
	for i := range cpu1.agents {
		res.AgentCPU = append(res.AgentCPU, (cpu1.agents[i]-cpu0.agents[i]).Seconds()/res.WallSecs)
	}
	res.MachineCPU = (cpu1.Machine - cpu0.Machine).Seconds() / res.WallSecs
	res.NumCPU = cpu1.NumCPU
	return res, nil
}

// passTimes are the moments of a pass: its first ACK sent, and the poll
// that saw its last recovery (zero: none).
type passTimes struct{ first, last time.Time }

// runPass sends frames and polls the switch until the pass has settled:
// the sender done, no connection being asked about, and no recovery
// counter moving for settleQuiet. before are the counters at its start; it
// returns the pass, the counters at its end and its times.
func runPass(sc *scraper, snd *ring.Ring, frames []byte, cfg Config, before Counters) (Pass, Counters, passTimes, error) {
	done := make(chan sent, 1)
	go func() { done <- sendFrames(snd, frames, cfg.Batch, cfg.SendRate) }()
	var (
		p       Pass
		t       passTimes
		out     sent
		sending = true
		cur     = before
		moved   = time.Now()
	)
	deadline := time.Now().Add(passTimeout)
	for {
		time.Sleep(pollEvery)
		if sending {
			select {
			case out = <-done:
				sending = false
			default:
			}
		}
		c, err := sc.scrape()
		now := time.Now()
		if err != nil {
			return p, cur, t, err
		}
		if c.Lookup > cur.Lookup {
			t.last = now
		}
		if progress(c) != progress(cur) {
			moved = now
		}
		cur = c
		if !sending && c.Recovering == 0 && now.Sub(moved) >= settleQuiet {
			break
		}
		if now.After(deadline) {
			return p, cur, t, fmt.Errorf("recovery: a pass has not settled after %v (%d being asked about)", passTimeout, c.Recovering)
		}
	}
	t.first = out.first
	p.Sent, p.SendErrors = out.stats.Sent, out.stats.Again+out.stats.NoBufs+out.stats.MsgSize+out.stats.Other
	p.SendSecs = out.took.Seconds()
	p.Switch = cur.sub(before)
	p.Recovered = p.Switch.Lookup
	if !t.last.IsZero() {
		p.Seconds = t.last.Sub(t.first).Seconds()
	}
	return p, cur, t, nil
}

// progress sums the counters that move while the switch works on a pass.
func progress(c Counters) uint64 {
	n := c.Lookup + c.Cookie + c.Asked + c.RingDrops
	for _, d := range c.Drops {
		n += d
	}
	return n
}

// macs returns the sender's Ethernet address (hw, its eth0's) and the
// switch's eth0 address, the one it answers ARP for the VIP with.
func macs(tb *testbed.Testbed, hw net.HardwareAddr) (src, dst [6]byte, err error) {
	if len(hw) != 6 {
		return src, dst, fmt.Errorf("recovery: the attacker's eth0 has no Ethernet address: %v", hw)
	}
	var sw net.HardwareAddr
	if err := tb.Do("sw", func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err == nil {
			sw = ifc.HardwareAddr
		}
		return err
	}); err != nil {
		return src, dst, err
	}
	if len(sw) != 6 {
		return src, dst, fmt.Errorf("recovery: the switch's eth0 has no Ethernet address: %v", sw)
	}
	return [6]byte(hw), [6]byte(sw), nil
}

// cpuTimes are CPU times at one moment: the switch's and the machine's,
// and each agent's.
type cpuTimes struct {
	pktrate.CPUTimes
	agents []time.Duration
}

// readCPU reads the CPU times of the site's switch, its agents and the
// machine.
func readCPU(s *site.Site) (cpuTimes, error) {
	var t cpuTimes
	var err error
	if t.CPUTimes, err = pktrate.ReadCPU(s); err != nil {
		return t, err
	}
	for i, a := range s.Agents {
		cpu, err := procstat.Process(a.Cmd.Process.Pid)
		if err != nil {
			return t, fmt.Errorf("recovery: be%d's agent: %w", i+1, err)
		}
		t.agents = append(t.agents, cpu)
	}
	return t, nil
}
