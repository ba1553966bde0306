package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"webswitch/bench/attack"
	"webswitch/conf"
)

const (
	// ackFloodDuration is the ACK flood's length: the client measures for
	// 4 s of it, after its 1 s warm-up (some 2,000 requests here).
	ackFloodDuration = 6 * time.Second
	// recoveryShardRSS is what flow recovery may add to the switch's
	// resident memory per shard, by design (shard/recover.go): a held
	// frame of heldFrameMax (2 KiB) for each of maxRecovering (1,024)
	// connections being asked about, and two generations of negativeMax
	// (32,768) unowned connections, a 16 B key and deadline each, 32 B
	// with the map's empty slots; twice that, since the collector lets the
	// heap grow to twice what is live (GOGC=100). Under a flood of
	// distinct keys every bound is reached within a second. All of the
	// switch's growth is heap: its rings are touched whole before the
	// flood (smaps: the packet sockets' mappings do not change).
	recoveryShardRSS = 2 * (1024*2048 + 2*32768*32)
	// agentRSSGrowthMax bounds the growth of an agent's resident memory
	// that the flood causes. Every agent is asked about every connection,
	// and keeps nothing once it has answered: a LOOKUP of up to 64
	// connections and its answer, a few KiB per switch connection, and
	// one sock_diag socket whose buffers are the kernel's. What may grow
	// is the Go heap's
	// garbage between collections and the runtime's buffers: be2's agent,
	// which serves no client here, grew by 0.1 MiB answering LOOKUPs about
	// 300,000 connections. 4 MiB would be passed by 14 B of state kept per
	// connection asked about.
	agentRSSGrowthMax = 4 * mib
	// agentLoadRSS is what serving the client may add to be1's agent: its
	// heap grows to its working size for the client's connections, with
	// the collector's slack (5.2 and 5.9 MiB in two runs here, serving
	// 1,300 and 5,900 connections in the flood).
	agentLoadRSS = 8 * mib
)

// recoveryCounters are the switch's flow recovery counters in /metrics
// (all shards'), and its drops of segments of connections it has no entry
// for, by reason.
type recoveryCounters struct {
	asked, queries, unanswered, recovered float64
	drops                                 map[string]float64
}

// recoveryDrops are the drop reasons of a segment of an unknown
// connection: beyond recovery_rate, too many being asked about, no owner
// (or an agent silent), no agent to ask, and, after the agents' answer, a
// segment with no valid cookie (shard.Drop).
var recoveryDrops = []string{"recovery_rate", "recovery_full", "no_owner", "no_agent", "no_flow"}

// recoveryMetrics reads the recovery counters from the switch's /metrics.
func (s *site) recoveryMetrics() recoveryCounters {
	c := recoveryCounters{
		asked:      s.metric("recovery_asked_total"),
		queries:    s.metric("recovery_queries_total"),
		unanswered: s.metric("recovery_unanswered_total"),
		recovered:  s.metric("recovered_flows_total"),
		drops:      map[string]float64{},
	}
	for _, reason := range recoveryDrops {
		c.drops[reason] = s.metric("dropped_frames_total", "reason="+reason)
	}
	return c
}

// minus returns the counters' growth since before.
func (c recoveryCounters) minus(before recoveryCounters) recoveryCounters {
	d := recoveryCounters{
		asked: c.asked - before.asked, queries: c.queries - before.queries,
		unanswered: c.unanswered - before.unanswered, recovered: c.recovered - before.recovered,
		drops: map[string]float64{},
	}
	for reason, n := range c.drops {
		d.drops[reason] = n - before.drops[reason]
	}
	return d
}

// TestACKFlood is the recovery issue's flood item: the attacker host sends
// ACKs of connections that never existed, from random sources in
// 198.18.0.0/15 with random numbers, half of them with 1 to 100 bytes of
// data, at floodRate (the cap TestSYNFlood explains) for ackFloodDuration,
// while the client fetches a 1 KiB file over 8 connections, a new
// connection per request. The switch has no entry for any of them, so each
// is a connection to recover, which it may ask its agents about (LOOKUP):
// the work must stay bounded. At least 99% of the client's requests
// succeed; the switch asks about no more connections than recovery_rate
// allows (a bound read from its counters, not from timing), and makes no
// flow of them; every ACK it took is asked about or dropped by a bound;
// its memory and the agents' stay within what recovery's bounds allow.
func TestACKFlood(t *testing.T) {
	s := startFloodSite(t, "K")
	cfg, err := conf.LoadSwitch(filepath.Join(s.Dir, "switch.toml"))
	if err != nil {
		t.Fatal(err)
	}
	rate, shards := float64(cfg.Switch.RecoveryRate), cfg.Switch.Shards
	before := s.recoveryMetrics()
	run := s.floodTrial(attack.FloodConfig{Kind: attack.FloodACK, Rate: floodRate, Duration: ackFloodDuration})
	rec := s.recoveryMetrics().minus(before)
	res, f := &run.res, &run.res.Flood
	agents := float64(len(res.Agents))
	t.Logf("switch: %d frames in, ring drops %d, tx dropped %d, %d RSTs; active flows %d -> %d (the client opened %d connections)",
		res.FramesIn, res.RingDrops, res.TxDropped, res.Resets, res.ActiveFlowsBefore, res.ActiveFlowsAfter, run.opens)
	t.Logf("recovery (/metrics): %.0f connections asked about (%.0f/s; recovery_rate %.0f/s), %.0f LOOKUPs (%.0f/s, %.1f connections each on average, to %.0f agents), %.0f unanswered, %.0f flows recovered",
		rec.asked, rec.asked/f.Seconds, rate, rec.queries, rec.queries/f.Seconds, rec.asked*agents/max(rec.queries, 1), agents, rec.unanswered, rec.recovered)
	t.Logf("drops (/metrics): recovery_rate %.0f, recovery_full %.0f, no_owner %.0f, no_agent %.0f, no_flow %.0f",
		rec.drops["recovery_rate"], rec.drops["recovery_full"], rec.drops["no_owner"], rec.drops["no_agent"], rec.drops["no_flow"])

	// The token bucket of each shard (recovery.take) holds a tenth of a
	// second of its share of recovery_rate, at least one LOOKUP's worth
	// (64), and fills at its share: over the flood, the switch may ask
	// about recovery_rate a second and the bursts (10% for the frames the
	// rings still held when the sender stopped).
	burst := float64(shards) * max(rate/float64(shards)/10, 64)
	if bound := rate*f.Seconds*1.1 + burst; rec.asked > bound {
		t.Errorf("the switch asked about %.0f connections during %.2f s of flood, want at most %.0f (recovery_rate %.0f/s, bursts %.0f)",
			rec.asked, f.Seconds, bound, rate, burst)
	}
	// Every ACK the shards took went to recovery: asked about, or dropped
	// by a bound (the negative cache's no_owner drops are left out: they
	// need a key seen before, which random ones almost never are).
	entered := uint64(rec.asked + rec.drops["recovery_rate"] + rec.drops["recovery_full"] + rec.drops["no_agent"])
	if low, high := (f.Sent-min(res.RingDrops, f.Sent))*9/10, f.Sent+run.opens; entered < low || entered > high {
		t.Errorf("%d ACKs asked about or dropped by a recovery bound, for %d sent and %d ring drops: want %d to %d",
			entered, f.Sent, res.RingDrops, low, high)
	}
	if rec.asked == 0 {
		t.Error("the switch asked about no connection: the flood did not reach recovery")
	}
	// A LOOKUP asks about one connection at least, to each agent: the
	// LOOKUP rate is bounded with the connections'.
	if rec.queries > agents*rec.asked {
		t.Errorf("%.0f LOOKUPs for %.0f connections asked about, to %.0f agents: want at most one per connection per agent", rec.queries, rec.asked, agents)
	}
	// No agent holds a flood's connection, and no random ACK is a valid
	// cookie: the flood makes no flow. (The client's connections may be
	// recovered: one whose handshake's last ACK a full ring dropped starts
	// again from the cookie of its request segment.)
	if opens := float64(run.opens); rec.recovered > opens || res.ActiveFlowsAfter-res.ActiveFlowsBefore > int64(run.opens) {
		t.Errorf("%.0f flows recovered, active flows %d -> %d: want at most the %d connections the client opened, of both",
			rec.recovered, res.ActiveFlowsBefore, res.ActiveFlowsAfter, run.opens)
	}
	run.checkSwitchRSS(int64(shards) * recoveryShardRSS)
	for i, u := range res.Agents {
		bound := int64(agentRSSGrowthMax)
		if i == 0 {
			bound += agentLoadRSS // be1 serves the client's page
		}
		if growth := u.RSSGrowth(); growth >= bound {
			t.Errorf("the agent of be%d grew by %.1f MiB during the flood, want less than %.0f MiB", i+1, float64(growth)/mib, float64(bound)/mib)
		}
	}
}
