package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	benchsite "webswitch/bench/site"
	"webswitch/bench/testbed"
)

// clusterSwitches is the number of switches of a cluster site.
const clusterSwitches = 3

// clusterRouteWait bounds how long a cluster test waits for the router's
// route to the VIP to change after a switch dies: BIRD drops the route as
// soon as the dead switch's kernel closes the BGP session (the hold time,
// 3 s, is the bound when nothing closes it).
const clusterRouteWait = 5 * time.Second

// needBIRD skips a cluster test when the routing daemon is missing.
func needBIRD(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("cluster test: needs BIRD 2 for the testbed's router (%s: %v); .ci/run installs it", tool, err)
		}
	}
}

// startCluster brings up the routed site of the cluster tests: 3 switches
// announcing the VIP by BGP to a BIRD router (an ECMP route with an L4
// hash), the client behind the router, and be1 and be2 in one pool, both
// serving www. It returns once the router routes through every switch.
func startCluster(t *testing.T, www string) *site {
	t.Helper()
	needBIRD(t)
	return startSiteConfig(t, benchsite.Config{
		Static1: www, Static2: www, Balanced: true, Offloads: true, Shards: 2,
		Switches: clusterSwitches, Router: testbed.RouterBIRD, BGP: true,
	})
}

// switchCounters returns switch i's shard counters (counting from 0).
func (s *site) switchCounters(i int) map[int]map[string]any {
	s.t.Helper()
	c, err := s.ShardCountersN(i)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// recoveredN sums switch i's recovered flows over its shards, by how
// ("lookup": an agent held the flow; "cookie").
func (s *site) recoveredN(i int) map[string]uint64 {
	s.t.Helper()
	n := map[string]uint64{}
	for _, how := range []string{"lookup", "cookie"} {
		n[how] = uint64(counterSum(s.switchCounters(i), "recovered")[how])
	}
	return n
}

// splicedN returns the number of flows switch i splices now.
func (s *site) splicedN(i int) int {
	s.t.Helper()
	return int(benchsite.SumCounter(s.switchCounters(i), "spliced_flows"))
}

// downloadMany starts n downloads of url at rate at once, each on its own
// connection (s.download); wait waits for them all and returns how many
// were byte-exact (sha256 want) and what went wrong with the others.
func (s *site) downloadMany(n int, url, rate, want string) (wait func() (exact int, bad []string)) {
	s.t.Helper()
	waits := make([]func() (string, error), n)
	for i := range waits {
		waits[i] = s.download(url, rate)
	}
	return func() (int, []string) {
		var exact int
		var bad []string
		for i, w := range waits {
			sum, err := w()
			if err == nil && sum == want {
				exact++
				continue
			}
			bad = append(bad, fmt.Sprintf("download %d: %v, sha256 %q", i, err, sum))
		}
		return exact, bad
	}
}

// routeHops returns the router's next hops for the VIP now, for logs.
func (s *site) routeHops() []string {
	s.t.Helper()
	rt, err := s.tb.VIPRoute()
	if err != nil {
		s.t.Fatal(err)
	}
	return rt.NextHops
}

// Cluster downloads: each lasts about 4 s (10 MiB at 2.5 MiB/s), 24 at
// once, so that each switch carries several of them by the router's hash.
const (
	clusterDownloads = 24
	clusterFileSize  = 10 * mib
	clusterRate      = "2560K"
)

// TestCluster runs 3 switches behind a BIRD router with ECMP (issue 12)
// and checks, in order on one site, that no connection is lost when a
// switch dies or joins:
//   - routes: the router's route to the VIP has the 3 switches as next
//     hops;
//   - kill: 24 rate-limited 10 MiB downloads, one switch killed (SIGKILL)
//     1.5 s in: the route loses it, and all 24 are byte-exact, the
//     surviving switches having recovered the dead one's flows by lookup;
//   - rejoin: that switch starts again during 24 more downloads; its route
//     returns mid-download, so the router's hash moves flows to it: all 24
//     byte-exact, and the new switch recovered flows by lookup;
//   - connections: new connections at 20/s across a SIGKILL of another
//     switch: none fails.
func TestCluster(t *testing.T) {
	needRoot(t, "ip", "curl", "sha256sum")
	needBIRD(t)
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "index.html"), smallBody)
	writeFile(t, filepath.Join(www, "small.txt"), smallBody)
	sum := randomFile(t, filepath.Join(www, "10m.bin"), clusterFileSize)
	wsbench := buildWsbench(t)
	s := startCluster(t, www)
	all := make([]string, clusterSwitches)
	for i := range all {
		all[i] = testbed.SwitchAddr(i + 1)
	}
	const victim, second = 2, 1 // the switch killed and restarted (sw3), the one killed last (sw2)

	t.Run("routes", func(t *testing.T) {
		rt, err := s.tb.WaitVIPNextHops(clusterSwitches, clusterRouteWait)
		if err != nil || !slices.Equal(rt.NextHops, all) {
			t.Fatalf("the router's route to the VIP: %+v %v, want next hops %v", rt, err, all)
		}
		t.Logf("route to the VIP: %s via %v", rt.Protocol, rt.NextHops)
	})

	t.Run("kill", func(t *testing.T) {
		s := &site{Site: s.Site, t: t, tb: s.tb}
		before := make([]map[string]uint64, clusterSwitches)
		for i := range before {
			before[i] = s.recoveredN(i)
		}
		wait := s.downloadMany(clusterDownloads, vipURL+"/10m.bin", clusterRate, sum)
		time.Sleep(1500 * time.Millisecond)
		spliced := make([]int, clusterSwitches)
		for i := range spliced {
			spliced[i] = s.splicedN(i)
		}
		retrans := s.retrans()
		if err := s.KillSwitchN(victim); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		rt, err := s.tb.WaitVIPNextHops(clusterSwitches-1, clusterRouteWait)
		routeGone := time.Since(killed)
		if err != nil || slices.Contains(rt.NextHops, testbed.SwitchAddr(victim+1)) {
			t.Errorf("the router's route after switch %d died: %+v %v, want the 2 others", victim+1, rt, err)
		}
		exact, bad := wait()
		if exact != clusterDownloads {
			t.Errorf("%d of %d downloads byte-exact across the kill of switch %d: %v", exact, clusterDownloads, victim+1, bad)
		}
		if spliced[victim] == 0 {
			t.Errorf("switch %d spliced no download when it was killed (spliced flows per switch %v): the kill proved nothing", victim+1, spliced)
		}
		var byLookup uint64
		figures := ""
		for i := range clusterSwitches {
			if i == victim {
				continue
			}
			r := s.recoveredN(i)
			byLookup += r["lookup"] - before[i]["lookup"]
			figures += fmt.Sprintf(" switch %d: %d by lookup, %d by cookie;", i+1, r["lookup"]-before[i]["lookup"], r["cookie"]-before[i]["cookie"])
		}
		if byLookup == 0 {
			t.Errorf("the surviving switches recovered no flow by lookup; switch %d spliced %d when it died", victim+1, spliced[victim])
		}
		t.Logf("spliced flows per switch at the kill %v; route without switch %d after %v: %v; recovered:%s client retransmissions %d",
			spliced, victim+1, routeGone.Round(time.Millisecond), rt.NextHops, figures, s.retrans()-retrans)
	})

	t.Run("rejoin", func(t *testing.T) {
		s := &site{Site: s.Site, t: t, tb: s.tb}
		retrans := s.retrans()
		wait := s.downloadMany(clusterDownloads, vipURL+"/10m.bin", clusterRate, sum)
		time.Sleep(time.Second)
		begun := time.Now()
		if err := s.StartSwitchN(victim); err != nil { // returns once the router routes through it
			t.Fatal(err)
		}
		routed := time.Since(begun)
		hops := s.routeHops()
		spliced := s.splicedN(victim)
		exact, bad := wait()
		if exact != clusterDownloads {
			t.Errorf("%d of %d downloads byte-exact across the return of switch %d: %v", exact, clusterDownloads, victim+1, bad)
		}
		if !slices.Equal(hops, all) {
			t.Errorf("the router's route after switch %d started again: %v, want %v", victim+1, hops, all)
		}
		r := s.recoveredN(victim)
		if r["lookup"] == 0 {
			t.Errorf("switch %d, started again mid-download, recovered no flow by lookup (%v); it spliced %d when its route was back", victim+1, r, spliced)
		}
		t.Logf("switch %d started 1 s into the downloads, routed through %v later (%v); it recovered %d flows by lookup, %d by cookie; client retransmissions %d",
			victim+1, routed.Round(time.Millisecond), hops, r["lookup"], r["cookie"], s.retrans()-retrans)
	})

	t.Run("connections", func(t *testing.T) {
		s := &site{Site: s.Site, t: t, tb: s.tb}
		const rate, duration = 20, 6 * time.Second // a new connection every 50 ms
		_, synRetrans := s.clientSYNs()
		wait := s.startLoad(wsbench, "-url", vipURL+"/small.txt", "-rate", strconv.Itoa(rate), "-c", "32",
			"-d", duration.String(), "-keepalive=false", "-timeout", "5s")
		time.Sleep(2 * time.Second)
		if err := s.KillSwitchN(second); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		rt, err := s.tb.WaitVIPNextHops(clusterSwitches-1, clusterRouteWait)
		routeGone := time.Since(killed)
		if err != nil || slices.Contains(rt.NextHops, testbed.SwitchAddr(second+1)) {
			t.Errorf("the router's route after switch %d died: %+v %v, want the 2 others", second+1, rt, err)
		}
		res := wait()
		var failed uint64
		for _, n := range res.Errors {
			failed += n
		}
		if failed != 0 || res.Requests == 0 {
			t.Errorf("%d requests, %d failed %v across the kill of switch %d; want none failed", res.Requests, failed, res.Errors, second+1)
		}
		_, synAfter := s.clientSYNs()
		t.Logf("%d requests at %d/s over %.1f s, %d failed; route without switch %d after %v: %v; longest request %.0f ms (p99 %.0f ms); client SYNs sent again %d",
			res.Requests, rate, res.Seconds, failed, second+1, routeGone.Round(time.Millisecond), rt.NextHops, res.Latency.Max, res.Latency.P99, synAfter-synRetrans)
	})
}
