package testbed

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The router of a routed testbed (Config.Router) runs BIRD 2 in the
// foreground in its namespace, with its configuration, control socket and
// log in RouterDir. BIRD takes the VIP/32 by BGP from every switch
// (RouterAS at RouterIP, the switch as SwitchAS at its own address,
// announcing the VIP with itself as next hop), accepts nothing else,
// announces nothing, and installs the equal routes as one ECMP route
// (merge paths) that the kernel spreads over the switches by an L4 hash
// (fib_multipath_hash_policy=1).
//
// BIRD connects to each switch's port 179 every second until a session
// is up, and accepts the switch's own connections as well: a switch that
// listens is back in the route within about a second of its start; one
// that only connects out waits for its own retry timer (GoBGP's first
// attempt comes 5 to 10 s after it starts).

// routerPoll is how often the Wait helpers look at the router.
const routerPoll = 100 * time.Millisecond

// routerStartWait bounds how long Up waits for BIRD's control socket.
const routerStartWait = 5 * time.Second

// Errors of the router helpers.
var (
	ErrNotRouted = errors.New("testbed: the testbed has no router")
	ErrTimeout   = errors.New("testbed: timed out")
	errBIRDState = errors.New("testbed: unexpected birdc output")
)

// RouterDir returns the directory of the router files of the testbed with
// this prefix: BIRD's configuration (bird.conf), control socket (bird.ctl)
// and log (bird.log). Up creates it and Down deletes it.
func RouterDir(prefix string) string {
	return filepath.Join(os.TempDir(), "webswitch-testbed-"+prefix)
}

// BIRDSocket returns the path of BIRD's control socket, for birdc -s.
func (tb *Testbed) BIRDSocket() string { return filepath.Join(RouterDir(tb.Prefix), "bird.ctl") }

// RouterLog returns the path of the router daemon's log (its stdout and
// stderr), which Down deletes: read it before.
func (tb *Testbed) RouterLog() string { return filepath.Join(RouterDir(tb.Prefix), "bird.log") }

// routerConfig returns the path of BIRD's configuration file.
func (tb *Testbed) routerConfig() string { return filepath.Join(RouterDir(tb.Prefix), "bird.conf") }

// routerCommandsInstalled checks that the commands of router are there.
func routerCommandsInstalled(router string) error {
	for _, c := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("testbed: Router %q needs the %s command (Debian package bird2): %w", router, c, err)
		}
	}
	return nil
}

// routerSysctls makes the router namespace forward with an L4 multipath
// hash, without reverse-path filtering (the back-ends' responses come
// from the VIP, which is routed back to the switches) and without ICMP
// redirects. It is called once its eth0 exists.
func (tb *Testbed) routerSysctls() error {
	return tb.sysctl("rtr",
		"net.ipv4.ip_forward", "1",
		"net.ipv4.fib_multipath_hash_policy", "1",
		"net.ipv4.conf.all.rp_filter", "0",
		"net.ipv4.conf.default.rp_filter", "0",
		"net.ipv4.conf.eth0.rp_filter", "0",
		"net.ipv4.conf.all.send_redirects", "0",
		"net.ipv4.conf.default.send_redirects", "0")
}

// BIRDConfig returns the configuration of the testbed's router for this
// many switches: one BGP session a switch, named "sw1" to "swN", each
// importing the VIP/32 alone and exporting nothing, and a kernel protocol
// that merges the equal routes into one ECMP route. BIRD connects after
// 1 s and retries every second; after a session fails it waits 1 to 2 s
// before it connects or accepts again (its default waits at least a
// minute, which would keep a restarted switch out). Each session asks for
// BFD on the LAN (300 ms x 3: a dead switch is out in about 0.9 s): a
// switch that runs BFD is watched by it, one that does not keeps its
// session, watched by the hold time alone.
func BIRDConfig(switches int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# The router of a webswitch testbed, written by bench/testbed.
log stderr all;
router id %[1]s;
timeformat protocol "%%T";
debug protocols { states, routes, events };

filter vip_only {
	if net = %[2]s/32 then accept;
	reject;
}

protocol device {
}

protocol kernel {
	ipv4 {
		import none;
		export filter vip_only;
	};
	merge paths on;
}

protocol bfd {
	interface "eth0" {
		interval 300 ms;
		multiplier 3;
	};
}

template bgp switch {
	local %[1]s as %[3]d;
	connect delay time 1;
	connect retry time 1;
	error wait time 1, 2;
	bfd on;
	ipv4 {
		import filter vip_only;
		export none;
	};
}
`, RouterIP, VIP, RouterAS)
	for i := 1; i <= switches; i++ {
		fmt.Fprintf(&b, "\nprotocol bgp sw%d from switch {\n\tneighbor %s as %d;\n}\n", i, SwitchAddr(i), SwitchAS)
	}
	return b.String()
}

// startRouter writes BIRD's configuration and starts it in the router's
// namespace, and waits until its control socket answers.
func (tb *Testbed) startRouter() error {
	if err := os.MkdirAll(RouterDir(tb.Prefix), 0o700); err != nil {
		return fmt.Errorf("testbed: router directory: %w", err)
	}
	if err := os.WriteFile(tb.routerConfig(), []byte(BIRDConfig(tb.Switches)), 0o600); err != nil {
		return fmt.Errorf("testbed: router configuration: %w", err)
	}
	p, err := tb.start("rtr", tb.RouterLog(), tb.detach, "bird", "-f", "-c", tb.routerConfig(), "-s", tb.BIRDSocket())
	if err != nil {
		return err
	}
	tb.router = p
	deadline := time.Now().Add(routerStartWait)
	for {
		out, err := tb.Birdc("show", "status")
		if err == nil && strings.Contains(out, "Daemon is up and running") {
			return nil
		}
		select {
		case <-p.Done():
			log, _ := os.ReadFile(p.Log)
			return fmt.Errorf("testbed: bird exited: %v: %s", p.Wait(), strings.TrimSpace(string(log)))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: bird's control socket after %v: %v", ErrTimeout, routerStartWait, err)
		}
		time.Sleep(routerPoll)
	}
}

// Birdc runs birdc on the router's control socket with args ("show",
// "protocols") and returns its output.
func (tb *Testbed) Birdc(args ...string) (string, error) {
	if !tb.routed {
		return "", ErrNotRouted
	}
	return run("birdc", append([]string{"-s", tb.BIRDSocket()}, args...)...)
}

// BGPSession is the router's view of its BGP session with one switch.
type BGPSession struct {
	Switch int    // the switch, counting from 1
	Name   string // BIRD's protocol name: "sw1" for switch 1
	State  string // BIRD's protocol state: "up", "start", "down"
	BGP    string // the BGP state: "Established", "Active", "Connect", "Idle", "OpenSent", "OpenConfirm"
	Info   string // the rest of BIRD's line, such as the last error
}

// BFDSessions returns the router's BFD sessions: its neighbour's address
// and the state ("Up", "Down", "Init", "AdminDown"), from "birdc show bfd
// sessions".
func (tb *Testbed) BFDSessions() (map[string]string, error) {
	out, err := tb.Birdc("show", "bfd", "sessions")
	if err != nil {
		return nil, err
	}
	return parseBFDSessions(out), nil
}

// parseBFDSessions reads the lines "IP address Interface State Since
// Interval Timeout" of "birdc show bfd sessions"; other lines are skipped.
func parseBFDSessions(out string) map[string]string {
	sessions := map[string]string{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= 3 && net.ParseIP(f[0]) != nil {
			sessions[f[0]] = f[2]
		}
	}
	return sessions
}

// BGPSessions returns the router's BGP sessions, one a switch in switch
// order, from "birdc show protocols".
func (tb *Testbed) BGPSessions() ([]BGPSession, error) {
	out, err := tb.Birdc("show", "protocols")
	if err != nil {
		return nil, err
	}
	return parseBIRDProtocols(out)
}

// parseBIRDProtocols reads the BGP protocols named "swN" from the output
// of "birdc show protocols": a line a protocol, "Name Proto Table State
// Since Info", where Since is one word (timeformat protocol "%T") and Info
// starts with the BGP state. Other lines are skipped.
func parseBIRDProtocols(out string) ([]BGPSession, error) {
	var sessions []BGPSession
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 4 || f[1] != "BGP" {
			continue
		}
		i := hostIndex(f[0], "sw", MaxSwitches)
		if i == 0 {
			continue
		}
		if len(f) < 5 {
			return nil, fmt.Errorf("%w: %q", errBIRDState, strings.TrimSpace(line))
		}
		s := BGPSession{Switch: i, Name: f[0], State: f[3]}
		if len(f) > 5 {
			s.BGP, s.Info = f[5], strings.Join(f[6:], " ")
		}
		sessions = append(sessions, s)
	}
	slices.SortFunc(sessions, func(a, b BGPSession) int { return a.Switch - b.Switch })
	return sessions, nil
}

// WaitBGP waits up to timeout until the router's session with each of
// switches (counting from 1; none: every switch) is in the BGP state
// (such as "Established"), and returns the sessions it saw last.
func (tb *Testbed) WaitBGP(state string, timeout time.Duration, switches ...int) ([]BGPSession, error) {
	if len(switches) == 0 {
		for i := 1; i <= tb.Switches; i++ {
			switches = append(switches, i)
		}
	}
	var sessions []BGPSession
	err := poll(timeout, func() (bool, string) {
		var err error
		sessions, err = tb.BGPSessions()
		if err == nil && sessionsIn(sessions, state, switches) {
			return true, ""
		}
		return false, fmt.Sprintf("BGP sessions with switches %v not %s: %+v %v", switches, state, sessions, err)
	})
	return sessions, err
}

// poll calls check every routerPoll until it returns true, for timeout at
// most; then it returns ErrTimeout with what check last said.
func poll(timeout time.Duration, check func() (ok bool, status string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, status := check()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v: %s", ErrTimeout, timeout, status)
		}
		time.Sleep(routerPoll)
	}
}

// sessionsIn reports whether the session of every one of switches is in
// the BGP state.
func sessionsIn(sessions []BGPSession, state string, switches []int) bool {
	for _, i := range switches {
		j := slices.IndexFunc(sessions, func(s BGPSession) bool { return s.Switch == i })
		if j < 0 || sessions[j].BGP != state {
			return false
		}
	}
	return true
}

// Route is a route of the router's kernel.
type Route struct {
	Protocol string   // who installed it: "bird", "static" ...
	Metric   int      // its metric; the kernel uses the lowest
	NextHops []string // the gateways, sorted; several for an ECMP route
}

// VIPRoute returns the router's route to the VIP/32 that its kernel uses
// (of those with the lowest metric, the first), from "ip -j route show";
// with none, a Route with no NextHops.
func (tb *Testbed) VIPRoute() (Route, error) {
	if !tb.routed {
		return Route{}, ErrNotRouted
	}
	out, err := tb.Run("rtr", "ip", "-j", "route", "show", VIP+"/32")
	if err != nil {
		return Route{}, err
	}
	routes, err := parseRoutes([]byte(out))
	if err != nil || len(routes) == 0 {
		return Route{}, err
	}
	return slices.MinFunc(routes, func(a, b Route) int { return a.Metric - b.Metric }), nil
}

// parseRoutes reads the output of "ip -j route show": a JSON array of
// routes, each with one "gateway" or a list of "nexthops".
func parseRoutes(data []byte) ([]Route, error) {
	type hop struct {
		Gateway string `json:"gateway"`
	}
	var raw []struct {
		hop
		Protocol string `json:"protocol"`
		Metric   int    `json:"metric"`
		NextHops []hop  `json:"nexthops"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("testbed: ip -j route: %w", err)
	}
	routes := make([]Route, 0, len(raw))
	for _, r := range raw {
		rt := Route{Protocol: r.Protocol, Metric: r.Metric}
		for _, h := range append(r.NextHops, r.hop) {
			if h.Gateway != "" {
				rt.NextHops = append(rt.NextHops, h.Gateway)
			}
		}
		slices.Sort(rt.NextHops)
		routes = append(routes, rt)
	}
	return routes, nil
}

// WaitVIPNextHops waits up to timeout until the router's route to the VIP
// has n next hops (0: no route), and returns the route it saw last.
func (tb *Testbed) WaitVIPNextHops(n int, timeout time.Duration) (Route, error) {
	return tb.WaitVIPRoute(fmt.Sprintf("%d next hops", n), timeout, func(rt Route) bool { return len(rt.NextHops) == n })
}

// WaitVIPRouteVia waits up to timeout until the router's route to the VIP
// goes through switch i (counting from 1), with others or alone, and
// returns the route it saw last.
func (tb *Testbed) WaitVIPRouteVia(i int, timeout time.Duration) (Route, error) {
	return tb.WaitVIPRoute("switch "+strconv.Itoa(i)+" as a next hop", timeout,
		func(rt Route) bool { return slices.Contains(rt.NextHops, SwitchAddr(i)) })
}

// WaitVIPRoute waits up to timeout until the router's route to the VIP
// (VIPRoute) is what ok accepts, and returns the route it saw last. The
// error on a timeout says what was awaited (want), and gives that route
// and the BGP sessions.
func (tb *Testbed) WaitVIPRoute(want string, timeout time.Duration, ok func(Route) bool) (Route, error) {
	var rt Route
	err := poll(timeout, func() (bool, string) {
		var err error
		rt, err = tb.VIPRoute()
		if err == nil && ok(rt) {
			return true, ""
		}
		sessions, serr := tb.BGPSessions()
		return false, fmt.Sprintf("the router's route to the VIP has not %s: %+v %v; BGP sessions %+v %v", want, rt, err, sessions, serr)
	})
	return rt, err
}

// RouteVIP gives the router a static route to the VIP through switches
// (counting from 1), an ECMP route when there are several: for switches
// that do not announce the VIP by BGP (they answer ARP for it, and frames
// routed to their own address reach them all the same). It wins over
// BIRD's route (metric 0 against 32). With no switches, it deletes that
// static route, if any.
func (tb *Testbed) RouteVIP(switches ...int) error {
	if !tb.routed {
		return ErrNotRouted
	}
	ns := tb.NS("rtr")
	if len(switches) == 0 {
		_, err := run("ip", "-n", ns, "route", "del", VIP+"/32", "proto", "static")
		if err != nil && strings.Contains(err.Error(), "No such process") {
			return nil
		}
		return err
	}
	args := []string{"-n", ns, "route", "replace", VIP + "/32", "proto", "static"}
	for _, i := range switches {
		if i < 1 || i > tb.Switches {
			return fmt.Errorf("%w: switch %d of %d", ErrHost, i, tb.Switches)
		}
		args = append(args, "nexthop", "via", SwitchAddr(i), "dev", "eth0")
	}
	_, err := run("ip", args...)
	return err
}

// stopNamespaceProcs stops every process in namespace ns: SIGTERM, and
// SIGKILL to those still there after grace. Down uses it on the router's
// namespace, whose daemon an attached Testbed did not start itself.
func stopNamespaceProcs(ns string, grace time.Duration) {
	pids := namespacePids(ns)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for len(pids) > 0 && time.Now().Before(deadline) {
		time.Sleep(routerPoll)
		pids = slices.DeleteFunc(pids, func(pid int) bool { return !processExists(pid) })
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// namespacePids returns the processes in namespace ns ("ip netns pids")
// but this one: "ip netns pids" goes by the namespace of a process's main
// thread, and a goroutine of Do that ran on the main thread leaves it in
// the namespace it joined (the runtime cannot end that thread).
func namespacePids(ns string) []int {
	out, err := run("ip", "netns", "pids", ns)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}
