package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"webswitch/bench/testbed"
)

// stateDir holds the testbed state files; a variable for tests.
var stateDir = "/run"

// testbedState is the content of a testbed state file, which records a
// testbed left up by "wsbench testbed up".
type testbedState struct {
	Prefix            string    `json:"prefix"`
	Backends          int       `json:"backends"`
	Switches          int       `json:"switches,omitempty"` // 0 in files of older versions: 1
	Router            string    `json:"router,omitempty"`
	CongestionControl string    `json:"congestion_control"`
	ClientOffloads    bool      `json:"client_offloads"`
	Created           time.Time `json:"created"`
}

// statePath returns the state file of the testbed with the given prefix.
func statePath(prefix string) string {
	return filepath.Join(stateDir, "webswitch-testbed-"+prefix+".json")
}

// testbedUsage is printed for a bad "wsbench testbed" command line.
const testbedUsage = `usage:
  wsbench testbed up [-prefix P] [-backends N] [-switches N] [-router bird|frr] [-offloads=true|false] [-cc cubic]
  wsbench testbed down -prefix P
  wsbench testbed list`

// runTestbed runs "wsbench testbed up|down|list".
func runTestbed(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, testbedUsage)
		return errUsage
	}
	switch args[0] {
	case "up":
		return testbedUp(args[1:], stdout, stderr)
	case "down":
		return testbedDown(args[1:], stdout, stderr)
	case "list":
		if len(args) > 1 {
			fmt.Fprintln(stderr, testbedUsage)
			return errUsage
		}
		return testbedList(stdout)
	}
	fmt.Fprintf(stderr, "unknown testbed command %q\n%s\n", args[0], testbedUsage)
	return errUsage
}

// newFlagSet returns a flag set for "wsbench testbed name" that reports to
// stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	flags := flag.NewFlagSet("wsbench testbed "+name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	return flags
}

// parseFlags parses args into flags and rejects positional arguments.
func parseFlags(flags *flag.FlagSet, args []string) error {
	if err := flags.Parse(args); err != nil {
		return errors.Join(errUsage, err)
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(flags.Output(), "unexpected arguments: %s\n", strings.Join(flags.Args(), " "))
		flags.Usage()
		return errUsage
	}
	return nil
}

// testbedUp creates a testbed, records it in a state file and leaves it up.
func testbedUp(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("up", stderr)
	prefix := flags.String("prefix", "", "namespace name prefix (default: generated, unique)")
	backends := flags.Int("backends", 2, "number of back-end namespaces")
	switches := flags.Int("switches", 1, "number of switch namespaces (sw, sw2 ... swN); more than one wants a -router")
	router := flags.String("router", "", `put the client behind a router namespace running this daemon: "bird" or "frr" (BGP from each switch, ECMP to the VIP)`)
	offloads := flags.Bool("offloads", true, "leave the client's NIC offloads on (false: tx checksumming, TSO, GSO, GRO off)")
	cc := flags.String("cc", "cubic", "TCP congestion control set on every LAN route")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if *prefix == "" {
		*prefix = newPrefix()
	}
	tb, err := testbed.Up(testbed.Config{
		Prefix:            *prefix,
		Backends:          *backends,
		Switches:          *switches,
		Router:            *router,
		Detach:            true, // the router outlives this command
		ClientOffloads:    offloads,
		CongestionControl: *cc,
	})
	if err != nil {
		return err
	}
	state, err := json.MarshalIndent(testbedState{
		Prefix:            tb.Prefix,
		Backends:          tb.Backends,
		Switches:          tb.Switches,
		Router:            tb.Router,
		CongestionControl: tb.CongestionControl,
		ClientOffloads:    tb.ClientOffloads,
		Created:           time.Now().UTC().Truncate(time.Second),
	}, "", "  ")
	if err == nil {
		err = os.WriteFile(statePath(tb.Prefix), append(state, '\n'), 0o644)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("state file: %w", err), tb.Down())
	}
	fmt.Fprintln(stdout, tb.Describe())
	fmt.Fprintf(stdout, "prefix: %s\nstate: %s\n", tb.Prefix, statePath(tb.Prefix))
	if tb.Routed() {
		fmt.Fprintf(stdout, "router: %s, files in %s; its BGP sessions: %s\n", tb.Router, testbed.RouterDir(tb.Prefix), tb.RouterStatus())
	}
	fmt.Fprintf(stdout, "tear down with: wsbench testbed down -prefix %s\n", tb.Prefix)
	return nil
}

// newPrefix returns a namespace prefix for a testbed that outlives this
// command: "wsup" and 4 random hex digits. Unlike the testbed's default
// (which names the process), it is never taken for an orphan by a later
// testbed.Up once this command has exited.
func newPrefix() string {
	var b [2]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return "wsup" + hex.EncodeToString(b[:])
}

// testbedDown deletes the namespaces of a testbed and its state file. It
// works without the state file: it deletes the namespaces named
// <prefix>-lan, -cli, -rtr, -sw, -swN and -beN that exist, and stops the
// router's daemon.
func testbedDown(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("down", stderr)
	prefix := flags.String("prefix", "", "namespace name prefix of the testbed (required)")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if *prefix == "" {
		fmt.Fprintln(stderr, "-prefix is required")
		flags.Usage()
		return errUsage
	}
	tb, err := testbed.Attach(*prefix)
	if err != nil {
		return err
	}
	names := tb.Namespaces()
	if err := tb.Down(); err != nil {
		return err
	}
	err = os.Remove(statePath(*prefix))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if len(names) == 0 {
			fmt.Fprintf(stdout, "no testbed %s: no state file and no namespaces\n", *prefix)
			return nil
		}
		fmt.Fprintf(stdout, "no state file for %s\n", *prefix)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "deleted %d namespaces: %s\n", len(names), strings.Join(names, " "))
	return nil
}

// testbedList prints the testbeds recorded in state files, with how many of
// their namespaces still exist.
func testbedList(stdout io.Writer) error {
	files, err := filepath.Glob(filepath.Join(stateDir, "webswitch-testbed-*.json"))
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PREFIX\tBACKENDS\tSWITCHES\tROUTER\tCC\tOFFLOADS\tCREATED\tNAMESPACES")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var st testbedState
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		tb, err := testbed.Attach(st.Prefix)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		switches, router, namespaces := max(st.Switches, 1), "-", 2+max(st.Switches, 1)+st.Backends
		if st.Router != "" {
			router = st.Router
			namespaces++
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%v\t%s\t%d of %d\n", st.Prefix, st.Backends, switches, router, st.CongestionControl,
			st.ClientOffloads, st.Created.Format(time.RFC3339), len(tb.Namespaces()), namespaces)
	}
	return w.Flush()
}
