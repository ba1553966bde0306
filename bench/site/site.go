// Package site runs a whole webswitch installation in a testbed: the switch
// (or several, behind a router) and two back-ends with their agents. The
// end-to-end tests, the demo and the bench harness share it.
package site

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"webswitch/bench/testbed"
)

// VIPURL is the base URL of the service.
const VIPURL = "http://" + testbed.VIP

// Config describes a site. be1 always serves Static1 with handoffd's static
// server; be2 serves Static2 the same way, or, when Upstream is set, runs
// that command (a server on 127.0.0.1:8080) behind handoffd's upstream mode.
// Requests under /static/ go to be1, all others to be2; with Balanced, every
// request goes to one pool of both back-ends (round-robin). With Agent2, be2
// runs that program instead of handoffd.
type Config struct {
	BinDir   string   // holds the webswitch and handoffd binaries
	Dir      string   // configuration files and logs
	Static1  string   // be1's document root
	Static2  string   // be2's document root (without Upstream)
	Upstream []string // be2's upstream server command
	Offloads bool     // client NIC offloads on
	Balanced bool     // one pool of both back-ends instead of the path rule
	// DirectPort, when not 0, makes each agent also serve plain TCP on its
	// back-end's address and this port (serve.direct_listen): the target
	// of direct clients and of other proxies.
	DirectPort int
	Shards     int
	Prefix     string   // testbed namespace prefix; empty: the testbed's default
	SwitchArgs []string // more webswitch flags, e.g. -cpuprofile FILE
	SwitchKeys string   // more keys of the switch's [switch] table, TOML lines (see SwitchConfig)
	// ProxyProtocol is be2's serve.proxy_protocol, with Upstream: the
	// version of the PROXY header handoffd sends the upstream server on
	// each connection (0: none).
	ProxyProtocol int
	// Rules are [[rule]] tables placed before the site's own rules (the
	// first match wins).
	Rules string
	// ReadyPaths are the paths Start waits to get a 200 for through the
	// VIP; nil: one per pool ("/static/" and "/", or "/hello" with
	// Upstream, or "/" when Balanced).
	ReadyPaths []string
	// AgentKeys are more keys of each agent's [serve] table (be1, be2),
	// TOML lines.
	AgentKeys [2]string
	// Agent2, when set, is be2's agent command instead of handoffd: a
	// program serving handed-off connections itself (cmd/httpagent).
	// "-config FILE", be2's agent configuration, is appended to it.
	Agent2 []string
	// Switches is the number of switches; 0 means 1. Switch i (counting
	// from 0) runs in the testbed host testbed.SwitchHost(i+1) with its
	// own configuration file, SwitchConfigFile(i); all have the same
	// SwitchKeys, Rules and SwitchArgs. More than one needs a Router.
	Switches int
	// Router puts the client behind a router namespace running this
	// routing daemon (testbed.Config.Router: "bird" or "frr").
	Router string
	// BGP makes every switch announce the VIP to the router ([bgp] in its
	// configuration, from BGPConfig), and each start of a switch wait
	// until the router routes through it. Without it, a routed site gives
	// the router a static route to the VIP through all the switches
	// (testbed.RouteVIP), which they serve since they answer ARP for the
	// VIP anyway.
	BGP bool
	// AdminPort, when not 0, makes each switch serve its admin API and
	// metrics on its own address and this port (AdminAddr); SwitchKeys
	// must then have no [admin] table.
	AdminPort int
}

// Errors of Start for a Config it cannot run.
var (
	ErrSwitches = errors.New("site: several switches need a Router (each would answer ARP for the VIP)")
	ErrBGP      = errors.New("site: BGP needs a Router")
)

// routeWait bounds how long a switch's start waits for the router to route
// the VIP through it (Config.BGP): its BGP session and announcement.
const routeWait = 30 * time.Second

// Site is a running installation.
type Site struct {
	TB         *testbed.Testbed
	Dir        string
	Switch     *testbed.Proc   // switch 0's process now (StartSwitch replaces it)
	SwitchLog  string          // switch 0's current log
	Switches   []*testbed.Proc // every switch's process now, switch 0 first (StartSwitchN replaces one)
	SwitchLogs []string        // their current logs
	Agents     []*testbed.Proc // the agents of be1, be2: handoffd, or Agent2
	Upstream   *testbed.Proc   // be2's upstream server, with Config.Upstream

	cfg    Config
	starts int // processes started, for unique log names
}

// Start brings up the testbed and the processes and waits until both pools
// answer through the VIP. On error everything it started is torn down.
func Start(cfg Config) (_ *Site, err error) {
	cfg.Switches = max(cfg.Switches, 1)
	switch {
	case cfg.Switches > 1 && cfg.Router == "":
		return nil, ErrSwitches
	case cfg.BGP && cfg.Router == "":
		return nil, ErrBGP
	}
	offloads := cfg.Offloads
	tb, err := testbed.Up(testbed.Config{Prefix: cfg.Prefix, ClientOffloads: &offloads, Switches: cfg.Switches, Router: cfg.Router})
	if err != nil {
		return nil, err
	}
	s := &Site{TB: tb, Dir: cfg.Dir, cfg: cfg,
		Switches: make([]*testbed.Proc, cfg.Switches), SwitchLogs: make([]string, cfg.Switches)}
	defer func() {
		if err != nil {
			tb.Down()
		}
	}()
	secret := filepath.Join(cfg.Dir, "secret")
	files := map[string]string{
		"secret":   "webswitch-" + tb.Prefix + "-0123456789abcdef\n",
		"be1.toml": agentConfig(secret, 1, fmt.Sprintf("static_root = %q\n%s", cfg.Static1, cfg.AgentKeys[0]), cfg.DirectPort),
	}
	for i := range cfg.Switches {
		conf := SwitchConfig(secret, max(cfg.Shards, 1), cfg.Balanced, cfg.SwitchKeys, cfg.Rules)
		if cfg.BGP {
			conf += BGPConfig(i + 1)
		}
		if cfg.AdminPort != 0 {
			conf += fmt.Sprintf("\n[admin]\nlisten = %q\n", s.AdminAddr(i))
		}
		files[filepath.Base(s.SwitchConfigFile(i))] = conf
	}
	if cfg.Upstream != nil {
		files["be2.toml"] = agentConfig(secret, 2, fmt.Sprintf("upstream = \"127.0.0.1:8080\"\nproxy_protocol = %d\n%s", cfg.ProxyProtocol, cfg.AgentKeys[1]), cfg.DirectPort)
	} else {
		files["be2.toml"] = agentConfig(secret, 2, fmt.Sprintf("static_root = %q\n%s", cfg.Static2, cfg.AgentKeys[1]), cfg.DirectPort)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(cfg.Dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	if cfg.Upstream != nil {
		if err := s.StartUpstream(); err != nil {
			return nil, err
		}
	}
	s.Agents = make([]*testbed.Proc, 2)
	for i := range s.Agents {
		if err := s.StartAgent(i); err != nil {
			return nil, err
		}
	}
	if tb.Routed() && !cfg.BGP {
		var all []int
		for i := range cfg.Switches {
			all = append(all, i+1)
		}
		if err := tb.RouteVIP(all...); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Switches {
		if err := s.StartSwitchN(i); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// SwitchConfigFile returns the configuration file of switch i (counting
// from 0): switch.toml for switch 0, switch-2.toml for switch 1, and so on
// (after the switch's testbed host, sw, sw2 ...).
func (s *Site) SwitchConfigFile(i int) string {
	if i == 0 {
		return filepath.Join(s.Dir, "switch.toml")
	}
	return filepath.Join(s.Dir, fmt.Sprintf("switch-%d.toml", i+1))
}

// AdminAddr returns the address of switch i's admin API (counting from
// 0), "" without Config.AdminPort.
func (s *Site) AdminAddr(i int) string {
	if s.cfg.AdminPort == 0 {
		return ""
	}
	return net.JoinHostPort(testbed.SwitchAddr(i+1), strconv.Itoa(s.cfg.AdminPort))
}

// StartSwitch starts switch 0: StartSwitchN(0).
func (s *Site) StartSwitch() error { return s.StartSwitchN(0) }

// KillSwitch kills switch 0: KillSwitchN(0).
func (s *Site) KillSwitch() error { return s.KillSwitchN(0) }

// StartSwitchN starts switch i (counting from 0), again after it died, was
// killed (KillSwitchN) or was stopped (SIGTERM, a drain), with the same
// arguments and configuration file, makes it Switches[i] and SwitchLogs[i]
// (and Switch and SwitchLog for switch 0), and waits: among several
// switches until its log says it runs; with BGP until the router routes
// the VIP through it; then, as Start does, until every ready path answers
// 200 through the VIP. Its log is webswitch.log for switch 0,
// webswitch-sw2.log for switch 1 and so on, then NAME-N.log for a
// restart. Down stops whichever switches are the current ones.
func (s *Site) StartSwitchN(i int) error {
	host := testbed.SwitchHost(i + 1)
	name := "webswitch"
	if i > 0 {
		name += "-" + host
	}
	sw, err := s.start(host, name, filepath.Join(s.cfg.BinDir, "webswitch"),
		append([]string{"-config", s.SwitchConfigFile(i)}, s.cfg.SwitchArgs...)...)
	if err != nil {
		return err
	}
	s.Switches[i], s.SwitchLogs[i] = sw, sw.Log
	if i == 0 {
		s.Switch, s.SwitchLog = sw, sw.Log
	}
	if len(s.Switches) > 1 {
		// The VIP's answer may come from another switch.
		if err := waitRunning(sw); err != nil {
			return err
		}
	}
	if s.cfg.BGP {
		if _, err := s.TB.WaitVIPRouteVia(i+1, routeWait); err != nil {
			return fmt.Errorf("switch %d: %w", i, err)
		}
	}
	return s.waitReady(readyPaths(s.cfg))
}

// KillSwitchN kills switch i (counting from 0) with SIGKILL (a crash: no
// drain, no final counters, its BGP session closed by its kernel) and
// waits until the process has been reaped.
func (s *Site) KillSwitchN(i int) error { return s.Switches[i].Kill() }

// waitRunning waits until the switch's log says it runs ("switch running",
// with its number of shards, at the info level of the default JSON log),
// or it exits.
func waitRunning(sw *testbed.Proc) error {
	deadline := time.Now().Add(readyWait)
	for {
		data, err := os.ReadFile(sw.Log)
		if err == nil && parseSwitchLog(data).shards > 0 {
			return nil
		}
		select {
		case <-sw.Done():
			return fmt.Errorf("site: switch exited before it ran: %v (log %s)", sw.Wait(), sw.Log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("site: switch not running after %v (log %s)", readyWait, sw.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readyPaths returns the paths Start and StartSwitch wait for: cfg's
// ReadyPaths, else one per pool.
func readyPaths(cfg Config) []string {
	if cfg.ReadyPaths != nil {
		return cfg.ReadyPaths
	}
	switch {
	case cfg.Balanced:
		return []string{"/"}
	case cfg.Upstream != nil:
		return []string{"/static/", "/hello"}
	}
	return []string{"/static/", "/"}
}

// start starts a process; its log is name.log, or name-N.log for the Nth
// restart.
func (s *Site) start(host, name, bin string, args ...string) (*testbed.Proc, error) {
	log := filepath.Join(s.Dir, name+".log")
	if _, err := os.Stat(log); err == nil {
		s.starts++
		log = filepath.Join(s.Dir, fmt.Sprintf("%s-%d.log", name, s.starts))
	}
	return s.TB.Start(host, log, bin, args...)
}

// StartAgent starts back-end i's handoffd (0: be1), again after it died or
// was stopped, and makes it Agents[i]. It writes its PID to AgentPIDFile(i).
// For be2 with Config.Agent2, it starts that command instead (log
// NAME-be2.log, after the command's base name; no PID file).
func (s *Site) StartAgent(i int) error {
	be := fmt.Sprintf("be%d", i+1)
	config := filepath.Join(s.Dir, be+".toml")
	name, bin, args := "handoffd", filepath.Join(s.cfg.BinDir, "handoffd"), []string{"-config", config, "-pid-file", s.AgentPIDFile(i)}
	if cmd := s.cfg.Agent2; i == 1 && cmd != nil {
		name, bin, args = filepath.Base(cmd[0]), cmd[0], append(slices.Clip(cmd[1:]), "-config", config)
	}
	agent, err := s.start(be, name+"-"+be, bin, args...)
	if err != nil {
		return err
	}
	s.Agents[i] = agent
	return nil
}

// AgentPIDFile is the file where back-end i's handoffd writes the PID of
// the process serving (after an upgrade, the new one's).
func (s *Site) AgentPIDFile(i int) string {
	return filepath.Join(s.Dir, fmt.Sprintf("handoffd-be%d.pid", i+1))
}

// StartUpstream starts be2's upstream server (Config.Upstream), again
// after it died or was stopped, and makes it Upstream.
func (s *Site) StartUpstream() error {
	up, err := s.start("be2", "upstream", s.cfg.Upstream[0], s.cfg.Upstream[1:]...)
	if err != nil {
		return err
	}
	s.Upstream = up
	return nil
}

// readyWait bounds how long a start waits for the switch to run, and then
// for the ready paths to answer.
const readyWait = 15 * time.Second

// waitReady waits until a request for each path succeeds.
func (s *Site) waitReady(paths []string) error {
	deadline := time.Now().Add(readyWait)
	for _, path := range paths {
		for {
			out, err := s.TB.Run("cli", "curl", "-sS", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", VIPURL+path)
			if err == nil && out == "200" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("switch not ready: GET %s: %s %v", path, out, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// Logs returns the tail of every process log, for a failure report, and
// with a router its log, BGP sessions and route to the VIP.
func (s *Site) Logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(s.Dir, "*.log"))
	if s.TB.Routed() {
		files = append(files, s.TB.RouterLogs()...)
		sessions, err := s.TB.BGPSessions()
		fmt.Fprintf(&b, "=== router: BGP sessions %+v %v\n", sessions, err)
		rt, err := s.TB.VIPRoute()
		fmt.Fprintf(&b, "=== router: route to the VIP %+v %v\n", rt, err)
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if len(data) > 8000 {
			data = data[len(data)-8000:]
		}
		fmt.Fprintf(&b, "=== %s (tail)\n%s\n", filepath.Base(f), data)
	}
	return b.String()
}

// Down stops everything and deletes the testbed.
func (s *Site) Down() error { return s.TB.Down() }

// SwitchConfig returns the switch's configuration for the testbed's two
// back-ends, with the given secret file and number of shards: /static/ to
// be1 and the rest to be2, or, balanced, everything to a pool of both;
// extra holds more keys of the [switch] table, and may go on with whole
// tables ([health], say); rules are [[rule]] tables tried before the
// site's own. The switch drains for testDrainTimeout when it is stopped,
// unless extra sets drain_timeout: the test network's flows (idle
// keep-alive connections, lingering ones) would otherwise keep every
// teardown waiting.
func SwitchConfig(secret string, shards int, balanced bool, extra, rules string) string {
	if !strings.Contains(extra, "drain_timeout") {
		extra = fmt.Sprintf("drain_timeout = %q\n%s", testDrainTimeout, extra)
	}
	pools, own := `[[pool]]
name = "static"
backends = ["be1"]
[[pool]]
name = "web"
backends = ["be2"]
`, `[[rule]]
path_prefix = "/static/"
pool = "static"
[[rule]]
pool = "web"
`
	if balanced {
		pools, own = `[[pool]]
name = "all"
backends = ["be1", "be2"]
`, `[[rule]]
pool = "all"
`
	}
	return fmt.Sprintf(`[switch]
interface = "eth0"
vip = %q
ports = [80]
shards = %d
%s
[control]
secret_file = %q
[[backend]]
name = "be1"
address = %q
agent = "%s:7070"
[[backend]]
name = "be2"
address = %q
agent = "%s:7070"
%s%s%s`, testbed.VIP, shards, extra, secret,
		testbed.BackendIP(1), testbed.BackendIP(1), testbed.BackendIP(2), testbed.BackendIP(2), pools, rules, own)
}

// BGPConfig returns the [bgp] table of switch i's configuration (counting
// from 1) in a routed site with Config.BGP: the switch, as
// testbed.SwitchAS with its own address as router id, peers with the
// router (testbed.RouterIP, testbed.RouterAS), which connects to the
// switch's port 179 (listen_port: a restarted switch is back within a
// second, not after its own first attempt 2 s or 7 s later) and accepts
// its connections too, and announces the VIP/32 with itself as next hop.
// The keys are
// those of issue 12; this is the one place to change if the switch's keys
// differ.
func BGPConfig(i int) string {
	return fmt.Sprintf(`
[bgp]
asn = %d
router_id = %q
hold_time = "3s"
listen_port = 179

[[bgp.peer]]
address = %q
asn = %d
`, testbed.SwitchAS, testbed.SwitchAddr(i), testbed.RouterIP, testbed.RouterAS)
}

// testDrainTimeout is the test network switch's drain_timeout: well within
// the testbed's grace before SIGKILL.
const testDrainTimeout = 500 * time.Millisecond

func agentConfig(secret string, i int, serve string, directPort int) string {
	if directPort != 0 {
		serve += fmt.Sprintf("\ndirect_listen = \"%s:%d\"", testbed.BackendIP(i), directPort)
	}
	return fmt.Sprintf("[agent]\nlisten = \"%s:7070\"\nvip = %q\nsecret_file = %q\n[serve]\n%s\n",
		testbed.BackendIP(i), testbed.VIP, secret, serve)
}

// WriteFiles writes files (path relative to root: content) under root,
// making the directories: document roots for a site.
func WriteFiles(root string, files map[string][]byte) error {
	for name, body := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, body, 0o644); err != nil {
			return err
		}
	}
	return nil
}
