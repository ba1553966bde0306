package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"

	"webswitch/bench/attack"
	"webswitch/bench/site"
	"webswitch/bench/testbed"
)

// synFloodUsage is printed for a bad "wsbench synflood" command line.
const synFloodUsage = "usage: wsbench synflood [-bin DIR] [-d 10s] [-rate R] [-shards N] [-prefix P] [-json]"

// synFloodFile is the file the client fetches during the flood, and its
// size.
const (
	synFloodFile = "1k.bin"
	synFloodSize = 1 << 10
)

// runSYNFlood runs "wsbench synflood": a SYN flood (bench/attack) from the
// attacker namespace against a switch in a fresh testbed, while "wsbench
// load" (this binary) in the client namespace fetches a 1 KiB file through
// the switch over 8 connections, a new connection per request. The testbed
// is torn down at the end or on SIGINT/SIGTERM.
func runSYNFlood(args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("wsbench synflood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, synFloodUsage)
		fs.PrintDefaults()
	}
	bin := fs.String("bin", "bin", "directory with the webswitch and handoffd binaries")
	d := fs.Duration("d", attack.DefaultFloodDuration, "how long to flood; the client measures for this less 2 s")
	rate := fs.Float64("rate", 0, "SYNs per second to offer; 0: as fast as the sender can")
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
		Flood:   attack.FloodConfig{Duration: *d, Rate: *rate},
		Wsbench: self,
		URL:     site.VIPURL + "/" + synFloodFile,
	}
	return onSite(*bin, cfg, map[string][]byte{synFloodFile: body},
		func(s *site.Site) (attack.FloodTrialResult, error) {
			return attack.FloodTrial(context.Background(), s, trial)
		}, *asJSON, stdout, printSYNFlood)
}

// printSYNFlood writes a short summary of a SYN flood trial.
func printSYNFlood(w io.Writer, r *attack.FloodTrialResult) {
	const mib = 1 << 20
	f := &r.Flood
	fmt.Fprintf(w, "SYN flood from %s, sources random in 198.18.0.0/15 outside the LAN, %.2f s: %.0f SYNs/s offered (%d sent, %d send errors; sender thread %.2f cores)\n",
		testbed.AttackerIP, f.Seconds, f.Rate, f.Sent, f.SendErrors, f.SenderCPU)
	fmt.Fprintf(w, "switch: %.0f SYN-ACKs/s (%d), ring drops %d, tx dropped %d; %d connections accepted, active flows %d -> %d\n",
		r.SYNAckRate, r.SYNAcks, r.RingDrops, r.TxDropped, r.Flows, r.ActiveFlowsBefore, r.ActiveFlowsAfter)
	fmt.Fprintf(w, "switch RSS: %.1f MiB before, %.1f MiB at most during the flood, %.1f MiB after\n",
		float64(r.Switch.RSSBefore)/mib, float64(r.Switch.RSSMax)/mib, float64(r.Switch.RSSAfter)/mib)
	fmt.Fprintf(w, "CPU during the flood, in cores of %d: webswitch %.2f, whole machine %.2f\n", r.NumCPU, r.Switch.CPU, r.MachineCPU)
	fmt.Fprintf(w, "real client: %.2f %% of its requests succeeded\n", 100*r.Success)
	printSummary(w, r.Load)
}
