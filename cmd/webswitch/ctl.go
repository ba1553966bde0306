package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"webswitch/conf"
	"webswitch/internal/announce"
)

const ctlUsage = `usage: webswitch ctl [-admin ADDR | -config FILE] COMMAND
commands:
  backends                      the back-ends: health on each shard, flows, handoffs
  flows [-client IP[:PORT]] [-backend NAME] [-state S] [-offset N] [-limit N]
                                the flows (S: request, handing_off, responding, spliced)
  reload                        re-read the configuration file (as SIGHUP does)
  upgrade [-timeout 30s]        run the binary now at webswitch's path in place of the running one,
                                keeping the PID, if its -check accepts the flags and the configuration
                                (as SIGUSR2 does); wait until the new process answers, healthy
  capture -n N -o FILE          write the next N frames the switch receives as a pcap file
  bgp                           with [bgp]: whether the VIP is announced, and the sessions with the routers
The admin address is -admin, else [admin] listen of the configuration file.
`

// ctl runs `webswitch ctl` with args and returns the exit status.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("webswitch ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage) }
	admin := fs.String("admin", "", "admin API address (host:port)")
	configPath := fs.String("config", "/etc/webswitch/switch.toml", "configuration file, for its [admin] listen")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	if *admin == "" {
		c, err := conf.LoadSwitch(*configPath)
		if err != nil {
			fmt.Fprintf(stderr, "webswitch ctl: no -admin, and %v\n", err)
			return 2
		}
		if !c.Admin.Listen.IsValid() {
			fmt.Fprintf(stderr, "webswitch ctl: no -admin, and %s has no [admin] listen\n", *configPath)
			return 2
		}
		*admin = c.Admin.Listen.String()
	}
	cl := &ctlClient{base: "http://" + *admin, http: &http.Client{}}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var err error
	switch cmd {
	case "backends":
		err = cl.backends(stdout)
	case "flows":
		err = cl.flows(rest, stdout, stderr)
	case "reload":
		err = cl.reload(stdout)
	case "upgrade":
		err = cl.upgrade(rest, stdout, stderr)
	case "capture":
		err = cl.capture(rest, stdout, stderr)
	case "bgp":
		err = cl.bgp(stdout)
	default:
		fmt.Fprintf(stderr, "webswitch ctl: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "webswitch ctl %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

type ctlClient struct {
	base string
	http *http.Client
}

// do sends a request for path and decodes the JSON answer into v; an
// answer other than 200 is an error carrying the server's message.
func (c *ctlClient) do(method, path string, v any) error {
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		body, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (c *ctlClient) backends(out io.Writer) error {
	var bs []BackendStatus
	if err := c.do("GET", "/backends", &bs); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tAGENT\tSTATE\tUSABLE ON\tACTIVE FLOWS\tHANDOFFS OK\tFAILED\tDOWNS")
	for _, b := range bs {
		state := "up"
		switch {
		case b.Removed:
			state = "removed"
		case b.UsableShards == 0:
			state = "down"
		case b.UsableShards < b.Shards:
			state = "partly up"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d shards\t%d\t%d\t%d\t%d\n", b.Name, b.Address, b.Agent, state,
			b.UsableShards, b.Shards, b.ActiveFlows, b.HandoffsOK, b.HandoffsFailed, b.Downs)
	}
	return tw.Flush()
}

func (c *ctlClient) bgp(out io.Writer) error {
	var st announce.Status
	if err := c.do("GET", "/bgp", &st); err != nil {
		return err
	}
	state := "withdrawn"
	switch {
	case st.Left:
		state = "withdrawn for good (draining or upgrading)"
	case st.Announced:
		state = "announced"
	}
	fmt.Fprintf(out, "VIP %v via %v: %s (%d changes)\n", st.Prefix, st.NextHop, state, st.Changes)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tASN\tSESSION\tBFD")
	for _, p := range st.Peers {
		fmt.Fprintf(tw, "%v\t%d\t%s\t%s\n", p.Address, p.ASN, p.State, orDash(p.BFD))
	}
	return tw.Flush()
}

// orDash returns s, or "-" for an empty table cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *ctlClient) flows(args []string, out, stderr io.Writer) error {
	fs := flag.NewFlagSet("webswitch ctl flows", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := fs.String("client", "", "only this client address, or address:port")
	backend := fs.String("backend", "", "only flows to this back-end")
	state := fs.String("state", "", "only flows in this state: request, handing_off, responding, spliced")
	offset := fs.Int("offset", 0, "skip this many flows")
	limit := fs.Int("limit", flowsDefaultLimit, "show at most this many flows")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	q := url.Values{"offset": {strconv.Itoa(*offset)}, "limit": {strconv.Itoa(*limit)}}
	for k, v := range map[string]string{"client": *client, "backend": *backend, "state": *state} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var page FlowsPage
	if err := c.do("GET", "/flows?"+q.Encode(), &page); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tCLIENT\tPORT\tSTATE\tBACKEND\tIDLE")
	for _, f := range page.Flows {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", f.Shard, f.Client, f.VIPPort, f.State, orDash(f.Backend),
			(time.Duration(f.Idle * float64(time.Second))).Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d of %d flows from %d\n", len(page.Flows), page.Total, page.Offset)
	return nil
}

func (c *ctlClient) reload(out io.Writer) error {
	var r struct{ Status string }
	if err := c.do("POST", "/reload", &r); err != nil {
		return err
	}
	fmt.Fprintln(out, r.Status)
	return nil
}

// upgradePoll is how often ctl upgrade asks for the new process.
const upgradePoll = 20 * time.Millisecond

// upgrade asks for an in-place upgrade, then waits until the admin API
// answers from the same PID with a new start time (the exec happened) and
// says the switch is healthy.
func (c *ctlClient) upgrade(args []string, out, stderr io.Writer) error {
	fs := flag.NewFlagSet("webswitch ctl upgrade", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the new process to answer, healthy")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	start := time.Now()
	var ans UpgradeAnswer
	if err := c.do("POST", "/upgrade", &ans); err != nil {
		return err
	}
	fmt.Fprintf(out, "checked: %s\n", ans.Check)
	// Each poll is bounded: the old process's connections die with it.
	poll := &ctlClient{base: c.base, http: &http.Client{Timeout: time.Second}}
	now, err := poll.awaitExec(ans.From, *timeout-time.Since(start))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "upgraded PID %d from %s to %s in %v", now.PID, ans.From, now, time.Since(start).Round(time.Millisecond))
	if now.Upgrade != nil {
		fmt.Fprintf(out, "; data path stopped for %v", now.Upgrade.Gap.Round(100*time.Microsecond))
	}
	fmt.Fprintln(out)
	if now.SHA256 == ans.From.SHA256 {
		fmt.Fprintf(out, "note: the binary is the same as before; was the new one installed at %s?\n", now.Executable)
	}
	return nil
}

// awaitExec polls the admin API until a process other than from answers
// with the same PID, and healthy, and returns its identity.
func (c *ctlClient) awaitExec(from Identity, timeout time.Duration) (Identity, error) {
	deadline := time.Now().Add(timeout)
	for ; ; time.Sleep(upgradePoll) {
		var id Identity
		err := c.do("GET", "/version", &id)
		switch {
		case err == nil && id.PID != from.PID:
			return Identity{}, fmt.Errorf("the admin API answers from PID %d, not %d: the switch was restarted instead (did the exec fail?); see its log", id.PID, from.PID)
		case err == nil && id.Started.Equal(from.Started):
			err = errors.New("the old process still answers")
		case err == nil:
			var health struct{ Status string }
			if err = c.do("GET", "/healthz", &health); err == nil {
				return id, nil
			}
			err = fmt.Errorf("the new process, %s, is not healthy: %w", id, err)
		}
		if time.Now().After(deadline) {
			return Identity{}, fmt.Errorf("no healthy new process within %v: %w; see the switch's log", timeout, err)
		}
	}
}

func (c *ctlClient) capture(args []string, out, stderr io.Writer) error {
	fs := flag.NewFlagSet("webswitch ctl capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 100, "frames to capture")
	path := fs.String("o", "", "pcap file to write (required)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *path == "" {
		fs.Usage()
		return errUsage
	}
	resp, err := c.http.Get(c.base + "/capture?n=" + strconv.Itoa(*n))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	f, err := os.Create(*path)
	if err != nil {
		return err
	}
	written, err := io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %d bytes; frames missed (capture slower than the traffic): %s\n", *path, written, resp.Trailer.Get(missedTrailer))
	return nil
}
