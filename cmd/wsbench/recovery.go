package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"webswitch/bench/pktrate"
	"webswitch/bench/recovery"
	"webswitch/bench/site"
)

// recoveryUsage is printed for a bad "wsbench recovery" command line.
const recoveryUsage = "usage: wsbench recovery [-bin DIR] [-flows N] [-agents 1|2] [-rate R] [-send-rate R] [-shards N] [-restart=false] [-prefix P] [-json]"

// recoveryReport is what "wsbench recovery" measured.
type recoveryReport struct {
	Recovery recovery.Result         `json:"recovery"`
	Restart  *recovery.RestartResult `json:"restart,omitempty"`
}

// runRecovery runs "wsbench recovery": flow recovery (bench/recovery) on a
// switch in a fresh testbed, torn down at the end or on SIGINT/SIGTERM:
// how fast the switch recovers N spliced connections it never saw from the
// agents, then, unless -restart=false, the time from a restart of the
// switch to its first recovered flow.
func runRecovery(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsbench recovery", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, recoveryUsage)
		fs.PrintDefaults()
	}
	bin := fs.String("bin", "bin", "directory with the webswitch and handoffd binaries")
	flows := fs.Int("flows", recovery.DefaultFlows, fmt.Sprintf("connections to recover (at most %d)", recovery.MaxFlows))
	agents := fs.Int("agents", recovery.DefaultAgents, "back-ends holding the connections: 1 (be1) or 2 (be1 and be2); the switch asks both")
	rate := fs.Int("rate", recovery.DefaultRecoveryRate, "the switch's recovery_rate: connections asked about per second")
	sendRate := fs.Float64("send-rate", 0, "ACKs per second offered; 0: as fast as the sender can")
	batch := fs.Int("batch", 256, fmt.Sprintf("ACKs per sendmmsg call (1-%d)", pktrate.MaxBatch))
	passes := fs.Int("passes", 1000, "sends of the unrecovered connections' ACKs, at most")
	shards := fs.Int("shards", recovery.DefaultShards, "switch shards")
	restart := fs.Bool("restart", true, "then kill and restart the switch during a download and time its first recovery")
	prefix := fs.String("prefix", "", "testbed namespace prefix (default: ws, random hex digits, p and the process id)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg := recovery.Config{
		Flows: *flows, Agents: *agents, Shards: *shards, RecoveryRate: *rate,
		SendRate: *sendRate, Batch: *batch, MaxPasses: *passes,
	}
	if *flows < 1 || *flows > recovery.MaxFlows || *agents < 1 || *agents > 2 || *rate < 1 || *sendRate < 0 ||
		*batch < 1 || *batch > pktrate.MaxBatch || *passes < 1 || *shards < 1 {
		fs.Usage()
		return errUsage
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.Holder = []string{self, recoveryHold}
	scfg := recovery.SiteConfig(cfg)
	scfg.Prefix = *prefix
	return onSite(*bin, scfg, recovery.Files(), func(s *site.Site) (r recoveryReport, err error) {
		if r.Recovery, err = recovery.Run(s, cfg); err != nil || !*restart {
			return r, err
		}
		rr, err := recovery.Restart(s)
		r.Restart = &rr
		return r, err
	}, *asJSON, stdout, printRecovery)
}

// recoveryHold is the hidden subcommand that holds connections for
// "wsbench recovery" (recovery.Hold), in the namespace it runs in.
const recoveryHold = "recovery-hold"

// runRecoveryHold runs recovery.Hold on standard input and output.
func runRecoveryHold(args []string, stdout, _ io.Writer) error {
	return recovery.Hold(args, os.Stdin, stdout)
}

// printRecovery writes a short summary of a recovery run.
func printRecovery(w io.Writer, r *recoveryReport) {
	const mib = 1 << 20
	rec := &r.Recovery
	offered := "as fast as the sender can"
	if rec.SendRate > 0 {
		offered = fmt.Sprintf("at %.0f/s", rec.SendRate)
	}
	fmt.Fprintf(w, "%d connections re-created on %d back-end(s) in %.2f s: MemAvailable -%.0f MiB, Slab +%.0f MiB; %d holder processes, RSS %.0f MiB\n",
		rec.Flows, rec.Agents, rec.CreateSecs, float64(rec.MemAvailDrop)/mib, float64(rec.SlabGrowth)/mib, rec.Holders, float64(rec.HolderRSS)/mib)
	fmt.Fprintf(w, "switch: %d shards, recovery_rate %d; one ACK per unrecovered connection each pass, %s\n", rec.Shards, rec.RecoveryRate, offered)
	for i, p := range rec.Passes {
		fmt.Fprintf(w, "pass %d: %d ACKs (%d sent, %d send errors, %.3f s); %d recovered in %.3f s; %s\n",
			i+1, p.Flows, p.Sent, p.SendErrors, p.SendSecs, p.Recovered, p.Seconds, dropSummary(p.Switch))
	}
	fmt.Fprintf(w, "first pass: %.0f flows/s; all %d passes: %d of %d recovered in %.3f s: %.0f flows/s (%d never reached their socket)\n",
		rec.FirstPassRate, len(rec.Passes), rec.Recovered, rec.Flows, rec.TotalSecs, rec.Rate, rec.Unrecovered)
	fmt.Fprintf(w, "  without the waits between passes: %.3f s, %.0f flows/s\n", rec.BusySecs, rec.BusyRate)
	c := &rec.Switch
	fmt.Fprintf(w, "switch: asked %d, LOOKUPs %d (unanswered %d), conflicts %d, recovered by cookie %d, forwarded %d; %s\n",
		c.Asked, c.Lookups, c.Unanswered, c.Conflicts, c.Cookie, c.Forwarded, dropSummary(*c))
	if c.Connections > 0 {
		fmt.Fprintf(w, "  %d ACK(s) passed for a handshake's last one (a valid SYN cookie by chance): the switch holds them as its own connections\n", c.Connections)
	}
	fmt.Fprintf(w, "recovery latency: %s\n", latencySummary(c.Latency))
	agents := make([]string, len(rec.AgentCPU))
	for i, a := range rec.AgentCPU {
		agents[i] = fmt.Sprintf("be%d %.2f", i+1, a)
	}
	fmt.Fprintf(w, "CPU over %.2f s, in cores of %d: webswitch %.2f, agents %s, whole machine %.2f\n",
		rec.WallSecs, rec.NumCPU, rec.SwitchCPU, strings.Join(agents, ", "), rec.MachineCPU)
	if rec.Recovered > 0 && len(rec.AgentCPU) > 0 {
		perFlow := func(cores float64) float64 { return 1e6 * cores * rec.WallSecs / float64(rec.Recovered) }
		fmt.Fprintf(w, "  per recovered flow, waits between passes included: webswitch %.1f µs, each agent about %.1f µs (every agent is asked about every flow)\n",
			perFlow(rec.SwitchCPU), perFlow((rec.AgentCPU[0]+rec.AgentCPU[len(rec.AgentCPU)-1])/2))
	}
	if rs := r.Restart; rs != nil {
		fmt.Fprintf(w, "restart (SIGKILL during a download, started again): /metrics answers after %.3f s, agents connected after %.3f s, first client segment after %.3f s, first flow recovered after %.3f s\n",
			rs.AdminSecs, rs.ReadySecs, rs.FrameSecs, rs.FirstSecs)
		fmt.Fprintf(w, "  the new switch: recovered %d by lookup, asked %d, %s; latency %s; download %s: %s\n",
			rs.Switch.Lookup, rs.Switch.Asked, dropSummary(rs.Switch), latencySummary(rs.Switch.Latency), okWord(rs.DownloadOK), rs.Download)
	}
}

// dropSummary lists a run's drops: the ring's and the switch's by reason.
func dropSummary(c recovery.Counters) string {
	reasons := make([]string, 0, len(c.Drops))
	for r := range c.Drops {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	parts := []string{fmt.Sprintf("ring drops %d", c.RingDrops)}
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%s %d", r, c.Drops[r]))
	}
	return "drops: " + strings.Join(parts, ", ")
}

// latencySummary gives a recovery latency histogram's count, mean and
// bucket bounds of the median and the 99th percentile.
func latencySummary(h recovery.Histogram) string {
	n := h.Count()
	if n == 0 {
		return "none"
	}
	return fmt.Sprintf("%d decided, mean %.2f ms, p50 <= %.3g ms, p99 <= %.3g ms",
		n, 1000*h.Sum/float64(n), 1000*h.Quantile(0.5), 1000*h.Quantile(0.99))
}

func okWord(ok bool) string {
	if ok {
		return "intact"
	}
	return "FAILED"
}
