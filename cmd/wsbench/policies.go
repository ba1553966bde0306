package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"webswitch/bench/policysim"
	"webswitch/l7"
)

// defaultSimPolicies are the policies "wsbench policies" compares unless
// told otherwise; cookie-affinity on the path is plain consistent hashing.
const defaultSimPolicies = "round-robin,least-connections,lard,bounded-load-hash,cookie-affinity"

// runPolicies runs "wsbench policies": the trace-driven comparison of the
// balancing policies (bench/policysim), as a Markdown table; with -out, a
// sweep over cache sizes as a second table and charts.
func runPolicies(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policies", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c policysim.Config
	fs.IntVar(&c.URLs, "urls", policysim.DefaultURLs, "distinct URLs")
	fs.Float64Var(&c.Zipf, "zipf", policysim.DefaultZipf, "exponent of the URLs' Zipf law (0: uniform)")
	fs.IntVar(&c.Requests, "requests", policysim.DefaultRequests, "requests in the trace")
	fs.IntVar(&c.Warmup, "warmup", 0, "first requests not measured (0: a tenth of -requests)")
	fs.Uint64Var(&c.Seed, "seed", policysim.DefaultSeed, "seed of the trace")
	fs.IntVar(&c.Backends, "backends", policysim.DefaultBackends, "back-ends")
	fs.IntVar(&c.Cache, "cache", policysim.DefaultCache, "objects in each back-end's LRU cache (-1: none)")
	fs.IntVar(&c.Clients, "clients", policysim.DefaultClients, "concurrent connections (closed loop)")
	fs.IntVar(&c.Shards, "shards", policysim.DefaultShards, "switch shards, each with its own picker")
	fs.DurationVar(&c.HitTime, "hit", policysim.DefaultHitTime, "service time of a cache hit")
	fs.DurationVar(&c.MissTime, "miss", policysim.DefaultMissTime, "service time of a cache miss")
	fs.Float64Var(&c.LoadFactor, "load-factor", l7.DefaultLoadFactor, "bounded-load hashing's c")
	fs.Int64Var(&c.LARDLow, "lard-low", l7.DefaultLARDLow, "LARD's T_low")
	fs.Int64Var(&c.LARDHigh, "lard-high", l7.DefaultLARDHigh, "LARD's T_high")
	fs.IntVar(&c.LARDTargets, "lard-targets", l7.DefaultLARDTargets, "LARD's target table size (per pool, shared by the shards)")
	policies := fs.String("policies", defaultSimPolicies, "policies to compare, in order")
	sweep := fs.String("sweep", "1000,2000,5000,10000,20000,50000", "cache sizes of the sweep (with -out)")
	out := fs.String("out", "", "folder for the sweep's charts (none: no sweep)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	var pols []l7.Policy
	for name := range strings.SplitSeq(*policies, ",") {
		p, err := l7.ParsePolicy(strings.TrimSpace(name))
		if err != nil {
			return fmt.Errorf("-policies: %w", err)
		}
		pols = append(pols, p)
	}
	results, err := policysim.Compare(c, pols)
	if err != nil {
		return err
	}
	var points []policysim.Point
	if *out != "" {
		var caches []int
		for f := range strings.SplitSeq(*sweep, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("-sweep: %q is not a positive cache size", f)
			}
			caches = append(caches, n)
		}
		if points, err = policysim.Sweep(c, pols, caches); err != nil {
			return err
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		if err := policysim.WriteCharts(*out, points); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Config  policysim.Config
			Results []policysim.Result
			Sweep   []policysim.Point `json:",omitempty"`
		}{c.Defaults(), results, points})
	}
	if err := policysim.WriteTable(stdout, results); err != nil {
		return err
	}
	if len(points) > 0 {
		fmt.Fprintln(stdout)
		return policysim.WriteSweepTable(stdout, points)
	}
	return nil
}
