package testbed

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The router of a routed testbed (Config.Router) runs a routing daemon in
// the foreground in its namespace, BIRD 2 (bird.go) or FRR (frr.go), with
// its configuration, control sockets and logs in RouterDir. The daemon
// takes the VIP/32 by BGP from every switch (RouterAS at RouterIP, the
// switch as SwitchAS at its own address, announcing the VIP with itself as
// next hop), accepts nothing else, announces nothing, and installs the
// equal routes as one ECMP route that the kernel spreads over the
// switches by an L4 hash (fib_multipath_hash_policy=1). It asks for BFD
// on every session (300 ms x 3): a switch that runs BFD is watched by it,
// one that does not keeps its session, watched by the hold time alone. It
// does no graceful restart: a switch's route goes with its session.
//
// The router connects to each switch's port 179 every second until a
// session is up, and accepts the switch's own connections as well: a
// switch that listens is back in the route within about a second of its
// start; one that only connects out waits for its own retry timer
// (GoBGP's first attempt comes 5 to 10 s after it starts).

// routerPoll is how often the Wait helpers look at the router.
const routerPoll = 100 * time.Millisecond

// routerStartWait bounds how long Up waits for the router's daemon to
// answer with its sessions.
const routerStartWait = 10 * time.Second

// Errors of the router helpers.
var (
	ErrNotRouted    = errors.New("testbed: the testbed has no router")
	ErrTimeout      = errors.New("testbed: timed out")
	errRouterOutput = errors.New("testbed: unexpected output of the router's daemon")
)

// routerDaemon is a routing daemon the router namespace can run.
type routerDaemon interface {
	// missing returns an error naming a command of the daemon that is
	// not installed, nil if none is missing.
	missing() error
	// start writes the daemon's files into RouterDir and starts its
	// processes in the router's namespace (Testbed.start).
	start(tb *Testbed) ([]*Proc, error)
	// bgpSessions returns its BGP sessions with the switches.
	bgpSessions(tb *Testbed) ([]BGPSession, error)
	// bfdSessions returns its BFD sessions: neighbour address to state.
	bfdSessions(tb *Testbed) (map[string]string, error)
	// status returns the shell command that shows its BGP sessions.
	status(tb *Testbed) string
}

// routerDaemons are the values of Config.Router and their daemons.
var routerDaemons = map[string]routerDaemon{
	RouterBIRD: birdDaemon{},
	RouterFRR:  frrDaemon{},
}

// daemon returns the testbed's routing daemon, or an error if it has none
// (no router, or an attached testbed whose daemon is not known).
func (tb *Testbed) daemon() (routerDaemon, error) {
	if d, ok := routerDaemons[tb.Router]; ok && tb.routed {
		return d, nil
	}
	return nil, ErrNotRouted
}

// RouterDir returns the directory of the router files of the testbed with
// this prefix: the daemon's configuration, control sockets and logs. Up
// creates it and Down deletes it.
func RouterDir(prefix string) string {
	return filepath.Join(os.TempDir(), "webswitch-testbed-"+prefix)
}

// RouterLogs returns the paths of the router daemon's logs (their stdout
// and stderr), which Down deletes: read them before.
func (tb *Testbed) RouterLogs() []string {
	logs, _ := filepath.Glob(filepath.Join(RouterDir(tb.Prefix), "*.log"))
	return logs
}

// RouterStatus returns a shell command that shows the router's BGP
// sessions, for people.
func (tb *Testbed) RouterStatus() string {
	d, err := tb.daemon()
	if err != nil {
		return ""
	}
	return d.status(tb)
}

// routerOf returns the routing daemon whose configuration is in dir
// (Config.Router), "" if none.
func routerOf(dir string) string {
	for _, c := range []struct{ file, router string }{{"bird.conf", RouterBIRD}, {"bgpd.conf", RouterFRR}} {
		if _, err := os.Stat(filepath.Join(dir, c.file)); err == nil {
			return c.router
		}
	}
	return ""
}

// startRouter starts the router's daemon and waits until it answers with
// a session for every switch.
func (tb *Testbed) startRouter() error {
	d, err := tb.daemon()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(RouterDir(tb.Prefix), 0o700); err != nil {
		return fmt.Errorf("testbed: router directory: %w", err)
	}
	procs, err := d.start(tb)
	tb.routerProcs = procs
	if err != nil {
		return err
	}
	var exited error
	err = poll(routerStartWait, func() (bool, string) {
		sessions, err := d.bgpSessions(tb)
		if err == nil && len(sessions) == tb.Switches {
			return true, ""
		}
		for _, p := range procs {
			select {
			case <-p.Done():
				log, _ := os.ReadFile(p.Log)
				exited = fmt.Errorf("testbed: the router's %s exited: %v: %s", p.Cmd.Args[3], p.Wait(), strings.TrimSpace(string(log)))
				return true, ""
			default:
			}
		}
		return false, fmt.Sprintf("the router's daemon has sessions %+v %v", sessions, err)
	})
	return errors.Join(exited, err)
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

// BGPSession is the router's view of its BGP session with one switch.
type BGPSession struct {
	Switch int    // the switch, counting from 1
	Name   string // BIRD's protocol name: "sw1" for switch 1
	State  string // BIRD's protocol state: "up", "start", "down" (the same words for FRR)
	BGP    string // the BGP state: "Established", "Active", "Connect", "Idle", "OpenSent", "OpenConfirm"
	Info   string // the rest of BIRD's line, such as the last error
}

// BGPSessions returns the router's BGP sessions, one a switch in switch
// order.
func (tb *Testbed) BGPSessions() ([]BGPSession, error) {
	d, err := tb.daemon()
	if err != nil {
		return nil, err
	}
	return d.bgpSessions(tb)
}

// BFDSessions returns the router's BFD sessions: the neighbour's address
// and the state, "Up", "Down", "Init" or "AdminDown".
func (tb *Testbed) BFDSessions() (map[string]string, error) {
	d, err := tb.daemon()
	if err != nil {
		return nil, err
	}
	return d.bfdSessions(tb)
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
