package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"webswitch/bench/load"
)

// loadUsage is printed for a bad "wsbench load" command line.
const loadUsage = `usage: wsbench load -url http://host[:port]/path [-url ...] [-c N] [-d 10s] [-warmup 1s]
                    [-rate R] [-keepalive=true|false] [-timeout 10s] [-json]`

// urlList is a repeatable -url flag.
type urlList []string

func (l *urlList) String() string     { return strings.Join(*l, " ") }
func (l *urlList) Set(s string) error { *l = append(*l, s); return nil }

// runLoad runs "wsbench load": HTTP load against one or more URLs, with a
// summary or the JSON result on stdout and, on a terminal, a live status
// line on stderr. An interrupt ends the run early with what was measured.
func runLoad(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("wsbench load", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprintln(stderr, loadUsage)
		flags.PrintDefaults()
	}
	var urls urlList
	flags.Var(&urls, "url", "URL to load, http:// only; repeat it to spread the connections over several")
	conns := flags.Int("c", 16, "connections: the concurrency (closed loop) or the most at once (open loop)")
	duration := flags.Duration("d", 10*time.Second, "measured duration")
	warmup := flags.Duration("warmup", time.Second, "warm-up before measuring, not counted")
	rate := flags.Float64("rate", 0, "requests/s over all connections (open loop); 0: closed loop")
	keepAlive := flags.Bool("keepalive", true, "keep connections open (false: a new connection per request)")
	timeout := flags.Duration("timeout", 10*time.Second, "per-request timeout, connect included")
	asJSON := flags.Bool("json", false, "print the result as JSON")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if len(urls) == 0 {
		fmt.Fprintln(stderr, "-url is required")
		flags.Usage()
		return errUsage
	}
	cfg := load.Config{
		URLs:        urls,
		Connections: *conns,
		Rate:        *rate,
		Duration:    *duration,
		Warmup:      *warmup,
		KeepAlive:   *keepAlive,
		Timeout:     *timeout,
	}
	if isTerminal(stderr) {
		cfg.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	printSummary(stdout, res)
	return nil
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printSummary writes a short human summary of res.
func printSummary(w io.Writer, res load.Result) {
	mode := "closed loop"
	if res.Mode == load.ModeOpen {
		mode = fmt.Sprintf("open loop at %g req/s", res.Rate)
	}
	conn := "keep-alive"
	if !res.KeepAlive {
		conn = "a connection per request"
	}
	fmt.Fprintf(w, "%s, %d connections, %s, %.2f s measured: %s\n", mode, res.Connections, conn, res.Seconds, strings.Join(res.URLs, " "))
	fmt.Fprintf(w, "  %d requests  %.1f req/s  %.2f MB/s  %d connects\n", res.Requests, res.RPS, res.MBps, res.Connects)
	l := res.Latency
	fmt.Fprintf(w, "  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	fmt.Fprintf(w, "  errors: %s\n", countsText(res.Errors))
}

// countsText lists counts by name, sorted by name: "a 1, b 2", or "none".
func countsText(counts map[string]uint64) string {
	if len(counts) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}
