// Command wsbench runs the webswitch test network and benchmarks.
//
//	wsbench testbed up [-prefix P] [-backends N] [-switches N] [-router bird|frr] [-offloads=true|false] [-cc cubic]
//	wsbench testbed down -prefix P
//	wsbench testbed list
//	wsbench demo [-bin DIR] [-mib N]
//	wsbench load -url URL [-url URL...] [-c N] [-d DUR] [-rate R] [-keepalive=false] [-json]
//	wsbench run [-bin DIR] [-out DIR] [-quick] [-sizes 1k,1m] [-setups direct,webswitch]
//	wsbench pps [-bin DIR] [-flows N] [-d DUR] [-json]
//	wsbench synflood [-kind syn|ack] [-bin DIR] [-d 10s] [-rate R] [-shards N] [-prefix P] [-json]
//	wsbench slowloris [-bin DIR] [-json] (see -h)
//	wsbench recovery [-bin DIR] [-flows N] [-agents 1|2] [-rate R] [-send-rate R] [-restart=false] [-json] (see -h)
//	wsbench failover [-bin DIR] [-downloads N] [-rate R] [-advert 1s] [-json] (see -h)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// errUsage reports a command line that could not be understood; the usage
// has already been printed.
var errUsage = errors.New("usage error")

// command is one wsbench subcommand.
type command struct {
	name    string
	summary string
	// run runs the subcommand with the arguments after its name, writing
	// results to stdout and usage messages to stderr.
	run func(args []string, stdout, stderr io.Writer) error
	// hidden commands are run by wsbench itself, not listed in the usage.
	hidden bool
}

// commands lists the subcommands in the order usage shows them.
var commands = []command{
	{name: "testbed", summary: "create, delete and list namespace test networks", run: runTestbed},
	{name: "demo", summary: "run a switch with two back-ends and show it working", run: runDemo},
	{name: "load", summary: "HTTP load generator: closed or open loop, latency histogram, JSON", run: runLoad},
	{name: "run", summary: "bench: direct, webswitch, HAProxy and nginx in one run, with a report", run: runRun},
	{name: "pps", summary: "packet-rate bench: spliced frames forwarded per second per shard", run: runPPS},
	{name: "synflood", summary: "SYN or random-ACK flood from an attacker namespace while wsbench load fetches pages", run: runSYNFlood},
	{name: "slowloris", summary: "slow clients holding the switch's flows while wsbench load fetches pages", run: runSlowloris},
	{name: "recovery", summary: "flow recovery: spliced flows a fresh switch recovers per second; restart to first recovery", run: runRecovery},
	{name: "failover", summary: "the active node killed under load: an HAProxy pair under keepalived against webswitch with 2 switches", run: runFailover},
	{name: "policies", summary: "trace-driven comparison of the balancing policies: cache hit rate, load balance", run: runPolicies},
	{name: recoveryHold, summary: "hold connections for wsbench recovery in this namespace", run: runRecoveryHold, hidden: true},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to the subcommand named by args[0] and returns the exit
// status: 0, 1 for a failure, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "help" {
		usage(stderr)
		return 2
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
			return 2
		default:
			fmt.Fprintf(stderr, "wsbench %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "wsbench: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// usage prints the list of subcommands.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: wsbench <command> [arguments]\n\ncommands:")
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
		}
	}
}
