package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"webswitch/bench/load"
	benchsite "webswitch/bench/site"
	"webswitch/bench/testbed"
)

// The cluster tests of issue 12 that take switches away without a kill:
// an in-place upgrade of each in turn, and a host that drops off the
// network without closing its session. They run the routed testbed with 3
// switches announcing the VIP by BGP to BIRD, and 2 back-ends.

// upgradeClusterAdminPort is the port of each switch's admin API on its
// own address (site AdminAddr).
const upgradeClusterAdminPort = 9100

// upgradeClusterSwitches is the number of switches.
const upgradeClusterSwitches = 3

// startUpgradeCluster brings up 3 switches with BGP (and o) behind BIRD,
// each with its admin API, one shard, and one pool of both back-ends
// serving www, and waits until the router's route has the 3 next hops.
func startUpgradeCluster(t *testing.T, binDir, www string, o benchsite.BGPOptions) *site {
	t.Helper()
	s := startSiteConfig(t, benchsite.Config{BinDir: binDir, Static1: www, Static2: www, Balanced: true, Shards: 1, Offloads: true,
		Switches: upgradeClusterSwitches, Router: testbed.RouterBIRD, BGP: true, BGPOptions: o, AdminPort: upgradeClusterAdminPort})
	if rt, err := s.tb.WaitVIPNextHops(upgradeClusterSwitches, 10*time.Second); err != nil {
		t.Fatalf("route to the VIP %+v: %v", rt, err)
	}
	return s
}

// identityN asks switch i's admin API (counting from 0) who it is.
func (s *site) identityN(i int) switchIdentity {
	s.t.Helper()
	out, err := s.tb.Run(testbed.SwitchHost(i+1), "curl", "-sS", "-m", "5", "http://"+s.AdminAddr(i)+"/version")
	if err != nil {
		s.t.Fatalf("switch %d: /version: %v", i, err)
	}
	var id switchIdentity
	if err := json.Unmarshal([]byte(out), &id); err != nil {
		s.t.Fatalf("switch %d: /version: %v: %s", i, err, out)
	}
	return id
}

// ctlN runs webswitch ctl against switch i's admin API, in its namespace.
func (s *site) ctlN(i int, args ...string) (string, error) {
	bin := filepath.Join(buildBinaries(s.t), "webswitch")
	return s.tb.Run(testbed.SwitchHost(i+1), bin, append([]string{"ctl", "-admin", s.AdminAddr(i)}, args...)...)
}

// routeChange is a route to the VIP the router had from a time on.
type routeChange struct {
	at   time.Time // when a poll first saw it
	hops []string  // its next hops, sorted; none: no route
}

// routeWatcher polls the router's route to the VIP and keeps its changes.
type routeWatcher struct {
	mu      sync.Mutex
	changes []routeChange
	stop    chan struct{}
	done    chan struct{}
}

// watchVIPRoute polls the router's route to the VIP every period until
// Stop; the test's cleanup stops it too.
func watchVIPRoute(t *testing.T, tb *testbed.Testbed, period time.Duration) *routeWatcher {
	w := &routeWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			if rt, err := tb.VIPRoute(); err == nil {
				w.mu.Lock()
				if n := len(w.changes); n == 0 || !slices.Equal(w.changes[n-1].hops, rt.NextHops) {
					w.changes = append(w.changes, routeChange{time.Now(), rt.NextHops})
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(period):
			}
		}
	}()
	t.Cleanup(w.Stop)
	return w
}

// Stop ends the polling.
func (w *routeWatcher) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// first returns when a poll first saw, at from or later, a route that ok
// accepts.
func (w *routeWatcher) first(from time.Time, ok func(hops []string) bool) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.changes {
		if !c.at.Before(from) && ok(c.hops) {
			return c.at, true
		}
	}
	return time.Time{}, false
}

// String lists the changes relative to the first.
func (w *routeWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, c := range w.changes {
		fmt.Fprintf(&b, "+%v %v; ", c.at.Sub(w.changes[0].at).Round(time.Millisecond), c.hops)
	}
	return b.String()
}

func without(hop string) func([]string) bool {
	return func(hops []string) bool { return !slices.Contains(hops, hop) }
}

func with(hop string) func([]string) bool {
	return func(hops []string) bool { return slices.Contains(hops, hop) }
}

// TestClusterRollingUpgrade upgrades the 3 switches of a BGP cluster in
// place, one after the other (webswitch ctl upgrade on each one's admin
// API, to a rebuilt binary), under a steady load of new connections and
// of keep-alive connections with a 3 s request timeout. Each switch must
// keep its PID and run the new build, leave the router's route (it
// withdraws the VIP first) and come back into it before the next is
// upgraded; no request may fail; and each upgraded switch takes new
// connections again.
func TestClusterRollingUpgrade(t *testing.T) {
	needRoot(t, "ip", "curl")
	needBIRD(t)
	needRoot(t, "install")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "1k.txt"), strings.Repeat("x", 1024))
	const newVersion = "e2e-rolling"
	bin, newBin := upgradeBinaries(t, newVersion)
	s := startUpgradeCluster(t, bin, www, benchsite.BGPOptions{})
	var before [upgradeClusterSwitches]switchIdentity
	for i := range before {
		before[i] = s.identityN(i)
		if before[i].PID != s.Switches[i].Cmd.Process.Pid {
			t.Fatalf("switch %d: /version PID %d, want %d", i, before[i].PID, s.Switches[i].Cmd.Process.Pid)
		}
	}
	install(t, newBin, filepath.Join(bin, "webswitch"))

	const loadFor = 18 * time.Second
	wsbench := buildWsbench(t)
	args := []string{"-url", vipURL + "/1k.txt", "-d", loadFor.String(), "-timeout", "3s"}
	loadStart := time.Now()
	newConns := s.startLoad(wsbench, append(args, "-rate", "100", "-c", "32", "-keepalive=false")...)
	keepAlive := s.startLoad(wsbench, append(args, "-rate", "50", "-c", "8")...)
	routes := watchVIPRoute(t, s.tb, 50*time.Millisecond)
	time.Sleep(2 * time.Second)

	type upgraded struct {
		ctl, out, back time.Duration // ctl upgrade's run; from its start until out of the route, and back in
		id             switchIdentity
	}
	var ups [upgradeClusterSwitches]upgraded
	for i := range ups {
		start := time.Now()
		out, err := s.ctlN(i, "upgrade", "-timeout", "10s")
		if err != nil {
			t.Fatalf("switch %d: ctl upgrade: %v\n%s", i, err, out)
		}
		ups[i].ctl = time.Since(start)
		if rt, err := s.tb.WaitVIPNextHops(upgradeClusterSwitches, 15*time.Second); err != nil {
			t.Fatalf("switch %d: not back in the route after its upgrade: %+v %v", i, rt, err)
		}
		ups[i].id = s.identityN(i)
		hop := testbed.SwitchAddr(i + 1)
		if left, ok := routes.first(start, without(hop)); !ok {
			t.Errorf("switch %d: the router's route never lost it during its upgrade: %v", i, routes)
		} else if back, ok := routes.first(left, with(hop)); ok {
			ups[i].out, ups[i].back = left.Sub(start), back.Sub(start)
		}
		time.Sleep(time.Second) // the load spreads over the 3 again
	}
	if time.Since(loadStart) > loadFor-time.Second {
		t.Fatalf("the upgrades took %v, longer than the load (%v): make the load longer", time.Since(loadStart), loadFor)
	}
	results := map[string]load.Result{"new connections": newConns(), "keep-alive": keepAlive()}
	routes.Stop()

	for i, u := range ups {
		id := u.id
		if id.PID != before[i].PID || id.Started.Equal(before[i].Started) || id.Version != newVersion || id.SHA256 == before[i].SHA256 || id.Upgrade == nil {
			t.Errorf("switch %d after its upgrade: %+v; want PID %d, a new start, version %s, an upgrade record", i, id, before[i].PID, newVersion)
			continue
		}
		t.Logf("switch %d (PID %d): ctl upgrade %v; out of the route %v after its start, back %v after; data path stopped %v",
			i, id.PID, u.ctl.Round(time.Millisecond), u.out.Round(time.Millisecond), u.back.Round(time.Millisecond), id.Upgrade.Gap.Round(time.Millisecond))
	}
	t.Logf("the router's route: %v", routes)
	var failed uint64
	for name, r := range results {
		var n uint64
		for _, e := range r.Errors {
			n += e
		}
		failed += n
		t.Logf("%s: %d requests, %d failed %v; p99 %.1f ms, max %.1f ms", name, r.Requests, n, r.Errors, r.Latency.P99, r.Latency.Max)
		if r.Requests == 0 {
			t.Errorf("%s: no request made", name)
		}
	}
	if failed != 0 {
		t.Errorf("%d requests failed across the rolling upgrade, want none", failed)
	}
	for i := range upgradeClusterSwitches {
		c, err := s.ShardCountersN(i)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("switch %d since its upgrade: connections %v, recovered %v, drops %v, resets %v",
			i, benchsite.SumCounter(c, "syn_acks"), counterSum(c, "recovered"), counterSum(c, "drops"), counterSum(c, "resets")[""])
		if benchsite.SumCounter(c, "syn_acks") == 0 {
			t.Errorf("switch %d took no new connection after its upgrade", i)
		}
	}
}

// hostDeathHold is the BGP hold time of the sessions (site BGPConfig): the
// longest a dead switch whose session never closes stays in the route.
const hostDeathHold = 3 * time.Second

// rejoinWait bounds how long a switch whose host came back on the network
// may take to be routed to again: the router connects every second, the
// switch listens, and GoBGP idles 5 s after a lost session.
const rejoinWait = 15 * time.Second

// TestClusterHostDeath takes a switch's host off the network during 12
// reader-paced 10 MiB downloads spread over the 3 switches: its port on
// the LAN's bridge goes down, so its BGP session is never closed (no
// Cease, no FIN) and the router finds out by BFD (300 ms x 3) or, without
// it, by the hold timer (3 s). The route through that switch must go
// within the hold time (plus a poll's margin), for the reason the case
// expects (BIRD's last error: the BFD session, or the hold timer); every
// download completes byte-exact, those on the dead switch recovered by the
// others; and the switch is back in the route once its port is up again.
//
// A bridge whose port goes down forgets the MACs it learnt there and
// floods their frames to every other port, so the other switches see
// the dead one's frames before the router moves them (and take them: the
// switch does not look at the destination MAC). The first two cases keep
// the dead switch's MAC on its port (a static entry), as a LAN switch
// does until its entry ages when a host dies with its link up: only the
// router's re-hashing moves the flows. The last lets the bridge flood.
func TestClusterHostDeath(t *testing.T) {
	needRoot(t, "ip", "curl")
	needBIRD(t)
	for _, tc := range []struct {
		name   string
		bfd    bool
		reason string // in BIRD's last error for the session
		flood  bool   // the bridge floods the dead switch's frames
	}{
		{"BFD", true, "BFD session down", false},
		{"hold timer", false, "Hold timer expired", false},
		{"BFD, bridge flooding", true, "BFD session down", true},
	} {
		t.Run(tc.name, func(t *testing.T) { testHostDeath(t, tc.bfd, tc.reason, tc.flood) })
	}
}

func testHostDeath(t *testing.T, bfd bool, reason string, flood bool) {
	const (
		downloads = 12
		size      = 10 << 20
	)
	www := t.TempDir()
	sum := randomFile(t, filepath.Join(www, "10m.bin"), size)
	s := startUpgradeCluster(t, "", www, benchsite.BGPOptions{BFD: bfd})
	// The client's receive buffer at most 1 MiB: the reader's pace then
	// holds the back-ends' sending too (a larger one takes a good part of
	// a download in the first second), so that every download still needs
	// the switches to forward its ACKs when the switch dies.
	if _, err := s.tb.Run("cli", "sysctl", "-qw", "net.ipv4.tcp_rmem=4096 131072 1048576"); err != nil {
		t.Fatal(err)
	}
	if bfd {
		if err := waitBFDUp(s.tb, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var before [upgradeClusterSwitches]float64
	for i := range before {
		before[i] = s.synACKsN(i)
	}
	waits := make([]func() (string, error), downloads)
	for i := range waits {
		waits[i] = s.slowDownload(vipURL+"/10m.bin", size)
	}
	time.Sleep(1500 * time.Millisecond)

	// The dead switch: the one with the most of the downloads.
	victim, flows := 0, make([]float64, upgradeClusterSwitches)
	for i := range flows {
		flows[i] = s.synACKsN(i) - before[i]
		if flows[i] > flows[victim] {
			victim = i
		}
	}
	host, hop := testbed.SwitchHost(victim+1), testbed.SwitchAddr(victim+1)
	if c, err := s.ShardCountersN(victim); err == nil {
		t.Logf("switch %d before its death: active flows %v, spliced %v, flows %v, frames in %v", victim,
			benchsite.SumCounter(c, "active_flows"), benchsite.SumCounter(c, "spliced_flows"), benchsite.SumCounter(c, "flows"), benchsite.SumCounter(c, "frames_in"))
	}
	cliSockets, _ := s.tb.Run("cli", "ss", "-tni", "dst", testbed.VIP)
	receiving := 0
	for _, m := range regexp.MustCompile(`bytes_received:(\d+)`).FindAllStringSubmatch(cliSockets, -1) {
		if n, _ := strconv.Atoi(m[1]); n < size {
			receiving++
		}
	}
	if receiving != downloads {
		t.Errorf("%d of the %d downloads still receiving when the switch died: the test's pace did not hold them", receiving, downloads)
	}
	if os.Getenv("WS_E2E_DEBUG") != "" {
		t.Logf("client sockets at the death:\n%s", cliSockets)
		for _, be := range []string{"be1", "be2"} {
			out, _ := s.tb.Run(be, "ss", "-tni", "src", testbed.VIP)
			t.Logf("%s sockets at the death:\n%s", be, out)
		}
	}
	othersRecovered := func() float64 {
		var n float64
		for i := range upgradeClusterSwitches {
			if i != victim {
				n += s.recoveredN(i)
			}
		}
		return n
	}
	if !flood {
		mac, err := s.tb.Run(host, "cat", "/sys/class/net/eth0/address")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.tb.Run("lan", "bridge", "fdb", "replace", strings.TrimSpace(mac), "dev", host, "master", "static"); err != nil {
			t.Fatal(err)
		}
	}
	recoveredBefore := othersRecovered()
	routes := watchVIPRoute(t, s.tb, 20*time.Millisecond) // apart from the counter reads below
	down := time.Now()
	if _, err := s.tb.Run("lan", "ip", "link", "set", host, "down"); err != nil {
		t.Fatal(err)
	}
	var gone time.Duration
	early := -1.0 // recovered by the others while the router still routed through the dead switch
	for {
		if at, ok := routes.first(down, without(hop)); ok {
			gone = at.Sub(down)
			break
		}
		if early < 0 && time.Since(down) > 500*time.Millisecond {
			early = othersRecovered() - recoveredBefore
			if _, ok := routes.first(down, without(hop)); ok {
				early = -1 // the route went meanwhile
			}
		}
		if time.Since(down) > hostDeathHold+2*time.Second {
			t.Fatalf("switch %d's host is off the network for %v and the router still routes through it: %v", victim, time.Since(down), routes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	routes.Stop()
	sessions, err := s.tb.BGPSessions()
	if err != nil {
		t.Fatal(err)
	}
	info := ""
	if j := slices.IndexFunc(sessions, func(b testbed.BGPSession) bool { return b.Switch == victim+1 }); j >= 0 {
		info = sessions[j].Info
	}
	t.Logf("switch %d (%d of the %d downloads; all switches %v; %d downloads still receiving) off the network: out of the route after %v (BFD %v, hold time %v); BIRD: %q",
		victim, int(flows[victim]), downloads, flows, receiving, gone.Round(time.Millisecond), bfd, hostDeathHold, info)
	if early >= 0 {
		t.Logf("flows recovered by the other switches 0.5 s after the death, while the router still routed through the dead switch: %v (bridge flooding %v)", early, flood)
		if !flood && early > 0 {
			t.Errorf("test set-up: the other switches recovered %v flows before the route changed, with the dead switch's MAC kept on its port", early)
		}
	}
	if gone > hostDeathHold+500*time.Millisecond {
		t.Errorf("the route through the dead switch went after %v, want within the hold time %v (and a poll)", gone, hostDeathHold)
	}
	if !strings.Contains(info, reason) {
		t.Errorf("BIRD's session with the dead switch: %q, want it down for %q", info, reason)
	}

	ok := 0
	for i, wait := range waits {
		got, err := wait()
		if err != nil || got != sum {
			t.Errorf("download %d: %v, sha256 %s, want %s", i, err, got, sum)
			continue
		}
		ok++
	}
	t.Logf("%d of %d downloads byte-exact", ok, downloads)
	// Each of the dead switch's flows sends a segment to another switch at
	// least at its end (the client's FIN), which that one recovers; the
	// last ones may still be on their way.
	var recovered float64
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		recovered = -recoveredBefore
		for i := range upgradeClusterSwitches {
			if i != victim {
				recovered += s.recoveredN(i)
			}
		}
		if recovered >= flows[victim] || time.Now().After(deadline) {
			break
		}
	}
	for i := range upgradeClusterSwitches {
		c, err := s.ShardCountersN(i)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("switch %d: connections %v, recovered %v, asked %v, unanswered %v, conflicts %v, drops %v, resets %v", i,
			benchsite.SumCounter(c, "syn_acks"), counterSum(c, "recovered"), benchsite.SumCounter(c, "recovery_asked"),
			benchsite.SumCounter(c, "recovery_unanswered"), benchsite.SumCounter(c, "recovery_conflicts"), counterSum(c, "drops"), benchsite.SumCounter(c, "resets"))
	}
	if recovered < flows[victim] {
		t.Errorf("the other switches recovered %v flows since the death, want at least the dead switch's %v", recovered, flows[victim])
	}

	if _, err := s.tb.Run("lan", "ip", "link", "set", host, "up"); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	if rt, err := s.tb.WaitVIPRouteVia(victim+1, rejoinWait); err != nil {
		// Not asserted: in about 1 run in 9 the session loops (BIRD's
		// hold timer expires right after a connection collision while
		// GoBGP says the peer is up) for longer than rejoinWait. An open
		// interop problem, written down in docs/cluster.md; what this test
		// asserts is the detection and the downloads.
		t.Logf("switch %d's host back on the network: not back in the route within %v: %+v %v", victim, rejoinWait, rt, err)
	} else {
		t.Logf("switch %d back in the route %v after its port came up", victim, time.Since(up).Round(time.Millisecond))
	}
}

// waitBFDUp waits until the router's BFD session with every switch is up.
func waitBFDUp(tb *testbed.Testbed, timeout time.Duration) error {
	var sessions map[string]string
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		sessions, err = tb.BFDSessions()
		up := 0
		for i := 1; i <= upgradeClusterSwitches; i++ {
			if sessions[testbed.SwitchAddr(i)] == "Up" {
				up++
			}
		}
		if err == nil && up == upgradeClusterSwitches {
			return nil
		}
	}
	return fmt.Errorf("the router's BFD sessions after %v: %v %v, want %d up", timeout, sessions, err, upgradeClusterSwitches)
}

// synACKsN returns how many connections switch i (counting from 0) has
// taken: its SYN-ACKs sent.
func (s *site) synACKsN(i int) float64 {
	s.t.Helper()
	c, err := s.ShardCountersN(i)
	if err != nil {
		s.t.Fatal(err)
	}
	return benchsite.SumCounter(c, "syn_acks")
}

// recoveredN returns how many flows switch i has recovered, by any means.
func (s *site) recoveredN(i int) float64 {
	s.t.Helper()
	c, err := s.ShardCountersN(i)
	if err != nil {
		s.t.Fatal(err)
	}
	var n float64
	for _, v := range counterSum(c, "recovered") {
		n += v
	}
	return n
}

// slowChunk and slowPause are slowDownload's pace: 2 MiB/s at most.
const (
	slowChunk = 256 << 10
	slowPause = "0.125"
)

// slowDownload is download at 2 MiB/s at most, of a body of size bytes,
// paced by the reader: curl writes into a pipe read slowChunk every
// slowPause s, so its socket's receive buffer fills and its window holds
// the sender back. (curl 7.88's --limit-rate here let half of 12
// downloads take their 10 MiB in the first second.)
func (s *site) slowDownload(url string, size int) (wait func() (string, error)) {
	s.t.Helper()
	var out bytes.Buffer
	pace := fmt.Sprintf("for i in $(seq %d); do dd bs=%d count=1 iflag=fullblock status=none; sleep %s; done; cat",
		(size+slowChunk-1)/slowChunk, slowChunk, slowPause)
	cmd := s.tb.Command("cli", "bash", "-o", "pipefail", "-c", "curl -sS -m 60 "+url+" | { "+pace+"; } | sha256sum")
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return func() (string, error) {
		err := cmd.Wait()
		if f := strings.Fields(out.String()); len(f) > 0 {
			return f[0], err
		}
		return "", err
	}
}
