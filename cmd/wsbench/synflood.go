package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"webswitch/bench/attack"
	"webswitch/bench/site"
	"webswitch/bench/testbed"
)

// synFloodUsage is printed for a bad "wsbench synflood" command line.
const synFloodUsage = "usage: wsbench synflood [-kind syn|ack] [-bin DIR] [-d 10s] [-rate R] [-shards N] [-prefix P] [-json]"

// synFloodFile is the file the client fetches during the flood, and its
// size.
const (
	synFloodFile = "1k.bin"
	synFloodSize = 1 << 10
)

// runSYNFlood runs "wsbench synflood": a flood (bench/attack) from the
// attacker namespace against a switch in a fresh testbed, while "wsbench
// load" (this binary) in the client namespace fetches a 1 KiB file through
// the switch over 8 connections, a new connection per request. The flood
// is of SYNs, or with -kind ack of ACKs of connections that never existed,
// which the switch asks its agents about (flow recovery). The testbed is
// torn down at the end or on SIGINT/SIGTERM.
func runSYNFlood(args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("wsbench synflood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, synFloodUsage)
		fs.PrintDefaults()
	}
	kind := attack.FloodSYN
	fs.TextVar(&kind, "kind", attack.FloodSYN, "flood with `syn|ack`: bare SYNs, which the switch answers with cookies, or ACKs of connections that never existed, half with 1-100 bytes of data, which it asks its agents about (flow recovery, within its recovery_rate)")
	bin := fs.String("bin", "bin", "directory with the webswitch and handoffd binaries")
	d := fs.Duration("d", attack.DefaultFloodDuration, "how long to flood; the client measures for this less 2 s")
	rate := fs.Float64("rate", 0, "segments per second to offer; 0: as fast as the sender can")
	shards := fs.Int("shards", 2, "switch shards")
	prefix := fs.String("prefix", "", "testbed namespace prefix (default: ws, random hex digits, p and the process id)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *d <= 0 || *rate < 0 || *shards < 1 {
		fs.Usage()
		return errUsage
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	body := make([]byte, synFloodSize)
	rand.Read(body) // never fails (crypto/rand panics instead)
	cfg := site.Config{Balanced: true, Offloads: true, Shards: *shards, Prefix: *prefix}
	trial := attack.FloodTrialConfig{
		Flood:   attack.FloodConfig{Kind: kind, Duration: *d, Rate: *rate},
		Wsbench: self,
		URL:     site.VIPURL + "/" + synFloodFile,
	}
	return onSite(*bin, cfg, map[string][]byte{synFloodFile: body},
		func(s *site.Site) (attack.FloodTrialResult, error) {
			return attack.FloodTrial(context.Background(), s, trial)
		}, *asJSON, stdout, printFlood)
}

// printFlood writes a short summary of a flood trial.
func printFlood(w io.Writer, r *attack.FloodTrialResult) {
	const mib = 1 << 20
	f := &r.Flood
	unit := strings.ToUpper(f.Kind.String()) + "s"
	fmt.Fprintf(w, "%s flood from %s, sources random in 198.18.0.0/15 outside the LAN, %.2f s: %.0f %s/s offered (%d sent, %d send errors; sender thread %.2f cores)\n",
		strings.ToUpper(f.Kind.String()), testbed.AttackerIP, f.Seconds, f.Rate, unit, f.Sent, f.SendErrors, f.SenderCPU)
	switch f.Kind {
	case attack.FloodSYN:
		fmt.Fprintf(w, "switch: %.0f SYN-ACKs/s (%d), ring drops %d, tx dropped %d; %d connections accepted, active flows %d -> %d\n",
			r.SYNAckRate, r.SYNAcks, r.RingDrops, r.TxDropped, r.Flows, r.ActiveFlowsBefore, r.ActiveFlowsAfter)
	case attack.FloodACK:
		fmt.Fprintf(w, "switch: asked the agents about %d connections (%.0f/s) in %d LOOKUPs (%.0f/s), %d unanswered; %d RSTs; ring drops %d, tx dropped %d; active flows %d -> %d\n",
			r.RecoveryAsked, r.RecoveryAskedRate, r.RecoveryQueries, r.RecoveryQueryRate, r.RecoveryUnanswered, r.Resets, r.RingDrops, r.TxDropped, r.ActiveFlowsBefore, r.ActiveFlowsAfter)
	}
	fmt.Fprintf(w, "switch drops: %s\n", countsText(r.Drops))
	usage := func(name string, u *attack.ProcUsage) {
		fmt.Fprintf(w, "%s: CPU %.2f cores; RSS %.1f MiB before, %.1f MiB at most during the flood, %.1f MiB after\n",
			name, u.CPU, float64(u.RSSBefore)/mib, float64(u.RSSMax)/mib, float64(u.RSSAfter)/mib)
	}
	usage("webswitch", &r.Switch)
	for i := range r.Agents {
		usage(fmt.Sprintf("agent of be%d", i+1), &r.Agents[i])
	}
	fmt.Fprintf(w, "whole machine: CPU %.2f cores of %d\n", r.MachineCPU, r.NumCPU)
	fmt.Fprintf(w, "real client: %.2f %% of its requests succeeded\n", 100*r.Success)
	printSummary(w, r.Load)
}
