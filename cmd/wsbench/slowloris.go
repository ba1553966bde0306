package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"webswitch/bench/attack"
	"webswitch/bench/site"
)

// runSlowloris runs "wsbench slowloris": the slow clients scenario
// (attack.SlowClients) on a switch in a fresh testbed, torn down at the end
// or on SIGINT/SIGTERM: slow connections fill the flow table, real clients
// fetch a page meanwhile, and it prints how both fared.
func runSlowloris(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("slowloris", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "directory with the webswitch and handoffd binaries")
	prefix := fs.String("prefix", "", "testbed namespace prefix (default: ws, random hex digits, p and the process id)")
	conns := fs.Int("c", 10000, "slow connections")
	interval := fs.Duration("interval", time.Second, "least time between two bytes of a slow connection")
	jitter := fs.Duration("jitter", time.Second, "random extra time between two bytes, up to this")
	requestTimeout := fs.Duration("request-timeout", 4*time.Second, "the switch's request_timeout")
	maxFlows := fs.Int("max-flows", 6000, "the switch's max_flows")
	shards := fs.Int("shards", 2, "switch shards")
	rate := fs.Float64("rate", 200, "real clients' requests per second, a new connection each")
	realConns := fs.Int("real-c", 16, "real clients' connections at most at once")
	d := fs.Duration("d", 8*time.Second, "real clients' measured time")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *conns < 1 || *interval <= 0 || *jitter < 0 ||
		*requestTimeout <= 0 || *maxFlows < 1 || *shards < 1 || !(*rate > 0) || *realConns < 1 || *d <= 0 {
		if err == nil {
			fs.Usage()
		}
		return errUsage
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	page := []byte("small page\n")
	cfg := site.Config{
		Offloads: true, Shards: *shards, Prefix: *prefix,
		SwitchKeys: fmt.Sprintf("request_timeout = %q\nmax_flows = %d\n", *requestTimeout, *maxFlows),
	}
	run := attack.SlowClientsConfig{
		Slowloris: attack.SlowlorisConfig{
			URL: site.VIPURL + "/", Connections: *conns, Interval: *interval, Jitter: *jitter,
			Hold: *requestTimeout + 2*time.Second,
		},
		MaxFlows: *maxFlows,
		Wsbench:  self,
		URL:      site.VIPURL + "/static/small.txt",
		Rate:     *rate, Connections: *realConns, Duration: *d, Timeout: 2 * time.Second,
	}
	return onSite(*bin, cfg, map[string][]byte{"index.html": page, "static/small.txt": page},
		func(s *site.Site) (attack.SlowClientsResult, error) {
			return attack.SlowClients(context.Background(), s, run)
		},
		*asJSON, stdout, printSlowClients)
}

// printSlowClients writes a short summary of a slow clients run.
func printSlowClients(w io.Writer, r *attack.SlowClientsResult) {
	sl, l := &r.Slowloris, &r.Load
	fmt.Fprintf(w, "slow connections: %d opened in %.2f s (%d failed), %d bytes sent\n", sl.Opened, sl.OpenSeconds, sl.ConnectFailed, sl.BytesSent)
	fmt.Fprintf(w, "  ended: answered %v, reset %d, closed %d, other error %d, still open at the end %d; lifetime s p50 %.2f p99 %.2f max %.2f\n",
		sl.Answered, sl.Reset, sl.Closed, sl.Failed, sl.Open, sl.Lifetime.P50, sl.Lifetime.P99, sl.Lifetime.Max)
	fmt.Fprintf(w, "switch: table full (%d flows a shard) after %.2f s, full in %d of %d samples while the real clients ran\n",
		r.ShardLimit, r.TableFullAfter, r.FullSamples, r.Samples)
	fmt.Fprintf(w, "  at most %d active flows (%d in a shard); %d evicted, %d refused (table_full), %d answered 408, %d RSTs\n",
		r.MaxActiveFlows, r.MaxShardActiveFlows, r.FlowsEvicted, r.TableFullDrops, r.RequestTimeouts, r.Resets)
	fmt.Fprintf(w, "real clients: %d requests, errors %v in %.1f s: %.2f %% succeeded; latency ms p50 %.2f p99 %.2f max %.2f\n",
		l.Requests, l.Errors, l.Seconds, 100*r.Success, l.Latency.P50, l.Latency.P99, l.Latency.Max)
}
