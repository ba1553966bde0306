package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"webswitch/bench/failover"
	"webswitch/bench/site"
)

// failoverUsage is printed for a bad "wsbench failover" command line.
const failoverUsage = "usage: wsbench failover [-bin DIR] [-downloads N] [-download-rate B] [-rate R] [-timeout 3s] [-kill-after 1.5s] [-d 6s] [-advert 1s] [-death host|process] [-prefix P] [-json]"

// runFailover runs "wsbench failover" (bench/failover): the same load
// against webswitch with two switches and an HAProxy pair under keepalived,
// in one fresh routed testbed, the active node killed during it; torn down
// at the end or on SIGINT/SIGTERM.
func runFailover(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsbench failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, failoverUsage)
		fs.PrintDefaults()
	}
	bin := fs.String("bin", "bin", "directory with the webswitch and handoffd binaries")
	var cfg failover.Config
	fs.IntVar(&cfg.Downloads, "downloads", failover.DefaultDownloads, "concurrent downloads of a 10 MiB file")
	fs.IntVar(&cfg.DownloadRate, "download-rate", failover.DefaultDownloadRate, "bytes per second of each download")
	fs.Float64Var(&cfg.Rate, "rate", failover.DefaultRate, "small requests per second, each on a new connection")
	fs.DurationVar(&cfg.Timeout, "timeout", failover.DefaultTimeout, "a small request's time limit")
	fs.DurationVar(&cfg.KillAfter, "kill-after", failover.DefaultKillAfter, "from the start of the load to the kill")
	fs.DurationVar(&cfg.Duration, "d", failover.DefaultDuration, "how long the small requests run")
	fs.DurationVar(&cfg.Advert, "advert", failover.DefaultAdvert, "keepalived's VRRP advert_int (at least 10ms)")
	fs.StringVar(&cfg.Death, "death", failover.DeathHost, "how the node dies: host (its frames dropped on the LAN, then its processes killed) or process (SIGKILL alone: its kernel goes on)")
	prefix := fs.String("prefix", "", "testbed namespace prefix (default: ws, random hex digits, p and the process id)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Wsbench, err = os.Executable(); err != nil {
		return err
	}
	scfg := failover.SiteConfig()
	scfg.Prefix = *prefix
	return onSite(*bin, scfg, failover.Files(), func(s *site.Site) (failover.Result, error) {
		return failover.Run(s, cfg)
	}, *asJSON, stdout, printFailover)
}

// printFailover writes the comparison's table and the downloads' status.
func printFailover(w io.Writer, r *failover.Result) {
	fmt.Fprint(w, failover.Table(r))
	for _, t := range []*failover.Trial{&r.HAProxy, &r.Webswitch} {
		for _, st := range t.DownloadStatus {
			fmt.Fprintf(w, "%s: download %s\n", t.Setup, st)
		}
	}
}
