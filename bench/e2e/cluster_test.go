package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// clusterAdminPort is the port of each cluster switch's admin API, on its
// own address (site.AdminAddr).
const clusterAdminPort = 9100

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
		Switches: clusterSwitches, Router: testbed.RouterBIRD, BGP: true, AdminPort: clusterAdminPort,
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

// switchRecovery is a switch's recovery counters, summed over its shards.
type switchRecovery struct {
	lookup, cookie uint64  // flows recovered: an agent held them; by a SYN cookie
	asked          uint64  // connections asked about
	unanswered     uint64  // questions no agent answered in time
	decided        uint64  // flows with a decision, as the latency histogram counts them
	latency        float64 // their total time from the first segment to the decision, in seconds
}

// recoveryN returns switch i's recovery counters (counting from 0).
func (s *site) recoveryN(i int) switchRecovery {
	s.t.Helper()
	c := s.switchCounters(i)
	rec := counterSum(c, "recovered")
	r := switchRecovery{lookup: uint64(rec["lookup"]), cookie: uint64(rec["cookie"]),
		asked:      uint64(benchsite.SumCounter(c, "recovery_asked")),
		unanswered: uint64(benchsite.SumCounter(c, "recovery_unanswered")),
		latency:    benchsite.SumCounter(c, "recovery_latency_sum")}
	for _, shard := range c {
		buckets, _ := shard["recovery_latency"].([]any)
		for _, b := range buckets {
			f, _ := b.(float64)
			r.decided += uint64(f)
		}
	}
	return r
}

// since returns the counts of r since before.
func (r switchRecovery) since(before switchRecovery) switchRecovery {
	return switchRecovery{lookup: r.lookup - before.lookup, cookie: r.cookie - before.cookie,
		asked: r.asked - before.asked, unanswered: r.unanswered - before.unanswered,
		decided: r.decided - before.decided, latency: r.latency - before.latency}
}

func (r switchRecovery) String() string {
	mean := 0.0
	if r.decided > 0 {
		mean = r.latency / float64(r.decided) * 1000
	}
	return fmt.Sprintf("%d by lookup, %d by cookie (%d asked about, %d unanswered), mean %.1f ms to decide", r.lookup, r.cookie, r.asked, r.unanswered, mean)
}

// recoveries returns every live switch's recovery counters (the zero
// value for those in dead).
func (s *site) recoveries(dead ...int) []switchRecovery {
	s.t.Helper()
	r := make([]switchRecovery, clusterSwitches)
	for i := range r {
		if !slices.Contains(dead, i) {
			r[i] = s.recoveryN(i)
		}
	}
	return r
}

// recoveredSince describes each live switch's recoveries since before,
// for a log, and returns the flows recovered by lookup, in all.
func (s *site) recoveredSince(before []switchRecovery, dead ...int) (string, uint64) {
	s.t.Helper()
	var b strings.Builder
	var lookup uint64
	for i, r := range s.recoveries(dead...) {
		if slices.Contains(dead, i) {
			continue
		}
		r = r.since(before[i])
		lookup += r.lookup
		fmt.Fprintf(&b, " switch %d: %v;", i+1, r)
	}
	return b.String(), lookup
}

// tcpFigures are TCP counters of the back-ends' kernels, summed: what
// they sent again, and why.
type tcpFigures struct {
	retrans    uint64 // segments sent again (Tcp.RetransSegs)
	timeouts   uint64 // retransmission timeouts (TcpExt.TCPTimeouts)
	lossProbes uint64 // tail loss probes (TcpExt.TCPLossProbes)
	fast       uint64 // fast retransmits (TcpExt.TCPFastRetrans)
	dsacks     uint64 // duplicates the client reported (TcpExt.TCPDSACKRecv): sent again for nothing
}

// backendTCP returns the back-ends' TCP figures.
func (s *site) backendTCP() tcpFigures {
	s.t.Helper()
	var f tcpFigures
	for _, be := range []string{"be1", "be2"} {
		m, err := s.tb.SNMP(be)
		if err != nil {
			s.t.Fatal(err)
		}
		f.retrans += m["Tcp.RetransSegs"]
		f.timeouts += m["TcpExt.TCPTimeouts"]
		f.lossProbes += m["TcpExt.TCPLossProbes"]
		f.fast += m["TcpExt.TCPFastRetrans"]
		f.dsacks += m["TcpExt.TCPDSACKRecv"]
	}
	return f
}

// since describes the figures' growth since before, for a log.
func (f tcpFigures) since(before tcpFigures) string {
	return fmt.Sprintf("%d (%d timeouts, %d loss probes, %d fast retransmits; %d reported duplicate)",
		f.retrans-before.retrans, f.timeouts-before.timeouts, f.lossProbes-before.lossProbes, f.fast-before.fast, f.dsacks-before.dsacks)
}

// downloadMany starts n downloads of url at once, each on its own
// connection, read at rate bytes/s (pacedDownload); wait waits for them all and returns how many
// were byte-exact (sha256 want) and what went wrong with the others.
func (s *site) downloadMany(n int, url string, rate int, want string) (wait func() (exact int, bad []string)) {
	s.t.Helper()
	waits := make([]func() (string, error), n)
	for i := range waits {
		waits[i] = s.pacedDownload(url, rate)
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

// flowPorts returns the client ports of the flows switch i (counting
// from 0) splices, finished ones included (its table keeps them a while).
func (s *site) flowPorts(i int) []string {
	s.t.Helper()
	out, err := s.tb.Run(testbed.SwitchHost(i+1), "curl", "-sS", "-m", "5", "http://"+s.AdminAddr(i)+"/flows?state=spliced&limit=10000")
	if err != nil {
		s.t.Fatalf("switch %d's flows: %v", i+1, err)
	}
	var page struct {
		Flows []struct {
			Client string `json:"client"`
		} `json:"flows"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		s.t.Fatalf("switch %d's flows: %v: %s", i+1, err, out)
	}
	var ports []string
	for _, f := range page.Flows {
		_, port, _ := net.SplitHostPort(f.Client)
		ports = append(ports, port)
	}
	return ports
}

// newFlows returns how many flows switch i splices that it did not when
// old was taken (its flowPorts).
func (s *site) newFlows(i int, old []string) int {
	s.t.Helper()
	n := 0
	for _, p := range s.flowPorts(i) {
		if !slices.Contains(old, p) {
			n++
		}
	}
	return n
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

// Cluster downloads: 24 at once, so that each switch carries several of
// them by the router's hash, each lasting about 4 s: 10 MiB read at
// clusterRate by the test binary (pacedReadArg), with the client's receive buffers limited
// to clusterClientRmem, so that the back-end sends each download at the
// reader's pace to its end. curl's --limit-rate is no such bound: curl
// 7.88 lets a download run faster than the limit when it fell behind at
// its start (many curls starting at once), and in a trial most downloads
// had ended within 1.5 s, before the kill. (The testbed's kernel has no fq
// qdisc to pace the back-ends instead.)
const (
	clusterDownloads  = 24
	clusterFileSize   = 10 * mib
	clusterRate       = 5 * mib / 2 // bytes/s
	clusterClientRmem = "4096 131072 524288"
)

// pacedReadArg makes the test binary a paced reader instead of running
// tests (init, before TestMain: this file's own helper): it reads its
// standard input at os.Args[2] bytes/s at most, in 64 KiB reads, and
// prints the SHA-256 of what it read.
const pacedReadArg = "e2e-pacedread"

func init() {
	if len(os.Args) != 3 || os.Args[1] != pacedReadArg {
		return
	}
	rate, err := strconv.Atoi(os.Args[2])
	if err == nil {
		err = pacedRead(os.Stdin, os.Stdout, rate)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func pacedRead(r io.Reader, w io.Writer, rate int) error {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	start := time.Now()
	var n int64
	for {
		k, err := r.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		time.Sleep(time.Until(start.Add(time.Duration(n * int64(time.Second) / int64(rate)))))
	}
	_, err := fmt.Fprintln(w, hex.EncodeToString(h.Sum(nil)))
	return err
}

// pacedDownload starts curl in the client namespace on url, piped into
// this binary as a paced reader (pacedReadArg) at rate bytes/s; wait returns the body's SHA-256 and the
// error of the pipe (curl's, within its 60 s limit).
func (s *site) pacedDownload(url string, rate int) (wait func() (string, error)) {
	s.t.Helper()
	var out bytes.Buffer
	self, err := os.Executable()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := s.tb.Command("cli", "bash", "-o", "pipefail", "-c",
		fmt.Sprintf("curl -sS -m 60 %s | %s %s %d", url, self, pacedReadArg, rate))
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	return func() (string, error) {
		err := cmd.Wait()
		return strings.TrimSpace(out.String()), err
	}
}

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
//     switch: none fails;
//   - health: with every agent dead no switch can serve, and each
//     withdraws the VIP; they announce it again when the agents return.
func TestCluster(t *testing.T) {
	needRoot(t, "ip", "curl")
	needBIRD(t)
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "index.html"), smallBody)
	writeFile(t, filepath.Join(www, "small.txt"), smallBody)
	sum := randomFile(t, filepath.Join(www, "10m.bin"), clusterFileSize)
	wsbench := buildWsbench(t)
	s := startCluster(t, www)
	s.run("sysctl", "-qw", "net.ipv4.tcp_rmem="+clusterClientRmem)
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
		before := s.recoveries()
		old := s.flowPorts(victim)
		wait := s.downloadMany(clusterDownloads, vipURL+"/10m.bin", clusterRate, sum)
		started := time.Now() // all 24 launched
		time.Sleep(time.Second)
		carried := s.newFlows(victim, old) // every download has begun, each on one switch
		retrans := s.retrans()
		beTCP := s.backendTCP()
		time.Sleep(time.Until(started.Add(1500 * time.Millisecond)))
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
		took := time.Since(started)
		if exact != clusterDownloads {
			t.Errorf("%d of %d downloads byte-exact across the kill of switch %d: %v", exact, clusterDownloads, victim+1, bad)
		}
		if carried == 0 {
			t.Errorf("switch %d carried no download when it was killed: the kill proved nothing", victim+1)
		}
		figures, byLookup := s.recoveredSince(before, victim)
		if byLookup < uint64(carried) {
			t.Errorf("the surviving switches recovered %d flows by lookup, want at least the %d downloads switch %d carried when it died", byLookup, carried, victim+1)
		}
		t.Logf("switch %d killed %.2f s after the downloads were launched, done %.1f s after it; it carried %d of them; route without switch %d after %v: %v; recovered:%s retransmitted segments: client %d, back-ends %s",
			victim+1, killed.Sub(started).Seconds(), took.Seconds(), carried, victim+1, routeGone.Round(time.Millisecond), rt.NextHops, figures, s.retrans()-retrans, s.backendTCP().since(beTCP))
	})

	t.Run("rejoin", func(t *testing.T) {
		s := &site{Site: s.Site, t: t, tb: s.tb}
		before := s.recoveries(victim)
		wait := s.downloadMany(clusterDownloads, vipURL+"/10m.bin", clusterRate, sum)
		time.Sleep(time.Second)
		// The downloads' start makes loss probes (the client's ACKs late
		// while 24 curls start): count from here, as the kill does.
		retrans := s.retrans()
		beTCP := s.backendTCP()
		begun := time.Now()
		if err := s.StartSwitchN(victim); err != nil { // returns once the router routes through it
			t.Fatal(err)
		}
		routed := time.Since(begun)
		hops := s.routeHops()
		exact, bad := wait()
		if exact != clusterDownloads {
			t.Errorf("%d of %d downloads byte-exact across the return of switch %d: %v", exact, clusterDownloads, victim+1, bad)
		}
		if !slices.Equal(hops, all) {
			t.Errorf("the router's route after switch %d started again: %v, want %v", victim+1, hops, all)
		}
		figures, _ := s.recoveredSince(before)
		if r := s.recoveryN(victim); r.lookup == 0 {
			t.Errorf("switch %d, started again mid-download, recovered no flow by lookup (%v)", victim+1, r)
		}
		t.Logf("switch %d started 1 s into the downloads, routed through %v later (%v); recovered:%s retransmitted segments: client %d, back-ends %s",
			victim+1, routed.Round(time.Millisecond), hops, figures, s.retrans()-retrans, s.backendTCP().since(beTCP))
	})

	t.Run("connections", func(t *testing.T) {
		s := &site{Site: s.Site, t: t, tb: s.tb}
		const rate, duration = 20, 6 * time.Second // a new connection every 50 ms
		_, synRetrans := s.clientSYNs()
		before := s.recoveries()
		handoffs := benchsite.SumCounter(s.switchCounters(second), "handoffs_ok")
		wait := s.startLoad(wsbench, "-url", vipURL+"/small.txt", "-rate", strconv.Itoa(rate), "-c", "32",
			"-d", duration.String(), "-keepalive=false", "-timeout", "5s")
		time.Sleep(2 * time.Second)
		handoffs = benchsite.SumCounter(s.switchCounters(second), "handoffs_ok") - handoffs
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
		if handoffs == 0 {
			t.Errorf("switch %d handed off no new connection in the 2 s before it was killed: the kill proved nothing", second+1)
		}
		_, synAfter := s.clientSYNs()
		figures, _ := s.recoveredSince(before, second)
		t.Logf("%d requests at %d/s over %.1f s, %d failed (switch %d had handed off %.0f in the 2 s before its kill); route without switch %d after %v: %v; longest request %.0f ms (p99 %.0f ms); client SYNs sent again %d; recovered:%s",
			res.Requests, rate, res.Seconds, failed, second+1, handoffs, second+1, routeGone.Round(time.Millisecond), rt.NextHops, res.Latency.Max, res.Latency.P99, synAfter-synRetrans, figures)
	})

	t.Run("health", func(t *testing.T) {
		// Every back-end's agent dies: no switch can serve, so each
		// withdraws the VIP; they announce it again once the agents are
		// back.
		before, err := s.tb.VIPRoute()
		if err != nil || len(before.NextHops) == 0 {
			t.Fatalf("the router's route before: %+v %v", before, err)
		}
		for i, a := range s.Agents {
			if err := a.Kill(); err != nil {
				t.Fatalf("agent %d: %v", i, err)
			}
		}
		killed := time.Now()
		if rt, err := s.tb.WaitVIPNextHops(0, clusterRouteWait); err != nil {
			t.Fatalf("the router's route with no back-end left: %+v %v, want none: every switch withdraws the VIP", rt, err)
		}
		gone := time.Since(killed)
		for i := range s.Agents {
			if err := s.StartAgent(i); err != nil {
				t.Fatal(err)
			}
		}
		started := time.Now()
		rt, err := s.tb.WaitVIPNextHops(len(before.NextHops), clusterRouteWait)
		if err != nil || !slices.Equal(rt.NextHops, before.NextHops) {
			t.Fatalf("the router's route with the agents back: %+v %v, want %v again", rt, err, before.NextHops)
		}
		if got := s.curl(vipURL + "/small.txt"); got != smallBody {
			t.Errorf("a request once the VIP is back: %q", got)
		}
		t.Logf("both agents killed: the VIP withdrawn by every switch after %v; announced again %v after the agents restarted",
			gone.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	})
}
