package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
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

// needBIRD skips a test that needs the routed testbed's BIRD.
func needBIRD(t *testing.T) {
	t.Helper()
	needRoot(t, "ip", "curl")
	for _, tool := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("cluster test: needs BIRD 2 (%s) for the router (.ci/run installs it): %v", tool, err)
		}
	}
}

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
	needBIRD(t)
	needRoot(t, "install")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "1k.txt"), strings.Repeat("x", 1024))
	// The site's own binaries: the test installs a new webswitch over them.
	bin, newBin := t.TempDir(), filepath.Join(t.TempDir(), "webswitch")
	for _, name := range []string{"webswitch", "handoffd"} {
		install(t, filepath.Join(buildBinaries(t), name), filepath.Join(bin, name))
	}
	const newVersion = "e2e-rolling"
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+newVersion, "-o", newBin, "webswitch/cmd/webswitch").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s := startUpgradeCluster(t, bin, www, benchsite.BGPOptions{Listen: true})
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
