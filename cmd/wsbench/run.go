package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"webswitch/bench/report"
	"webswitch/bench/scenario"
)

// runRun is `wsbench run`: the bench scenarios, direct against webswitch,
// HAProxy and nginx, in one run, written as a report to -out.
func runRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "directory with the webswitch, handoffd and wsbench binaries")
	out := fs.String("out", "bench-out", "folder for report.md, report.json and the charts")
	sizes := fs.String("sizes", "1k,100k,1m,10m", "response sizes, measured with keep-alive")
	closeSizes := fs.String("close-sizes", "1k", "sizes also measured with a new connection per request (empty: none)")
	setups := fs.String("setups", strings.Join(scenario.DefaultSetups, ","), "set-ups to run, in order")
	d := fs.Duration("d", 10*time.Second, "measured time per row")
	warmup := fs.Duration("warmup", 2*time.Second, "warm-up per row")
	conns := fs.Int("c", 16, "concurrent client connections")
	wrk := fs.Bool("wrk", true, "cross-check the webswitch and HAProxy keep-alive rows with wrk")
	shards := fs.Int("shards", 1, "webswitch shards")
	profile := fs.String("cpuprofile", "", "write the switch's CPU profile of the whole run to this file (go tool pprof)")
	ringVersion := fs.Int("ring-version", 0, "the switch's packet ring, 2 or 3 (0: the switch's default)")
	quick := fs.Bool("quick", false, "short rows (-d 2s -warmup 500ms): the whole run in under 3 minutes")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	if *quick {
		*d, *warmup = 2*time.Second, 500*time.Millisecond
	}
	cfg := scenario.Config{
		BinDir: *bin, Duration: *d, Warmup: *warmup, Connections: *conns, Wrk: *wrk, Shards: *shards,
		Command: "wsbench run " + strings.Join(args, " "), Log: stderr, Interrupt: true, CPUProfile: *profile, RingVersion: *ringVersion,
	}
	var err error
	if cfg.Sizes, err = parseSizes(*sizes); err != nil {
		return err
	}
	if cfg.CloseSizes, err = parseSizes(*closeSizes); err != nil {
		return err
	}
	for _, s := range strings.Split(*setups, ",") {
		if !contains(scenario.DefaultSetups, s) {
			return fmt.Errorf("-setups: unknown set-up %q (want some of %s)", s, strings.Join(scenario.DefaultSetups, ","))
		}
		cfg.Setups = append(cfg.Setups, s)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root to create the test network's namespaces")
	}
	rep, err := scenario.Run(cfg)
	if err != nil {
		return err
	}
	if err := report.Write(*out, rep); err != nil {
		return err
	}
	if err := report.WriteMarkdown(stdout, rep); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "report written to %s\n", *out)
	return nil
}

func parseSizes(s string) ([]int64, error) {
	var sizes []int64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := scenario.ParseSize(f)
		if err != nil {
			return nil, err
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
