package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseBIRDProtocols(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     00:41:07      
kernel1    Kernel     master4    up     00:41:07      
sw2        BGP        ---        start  00:41:07      Active        Socket: Connection closed
sw1        BGP        ---        up     00:41:09      Established   
sw3        BGP        ---        start  00:41:07      Passive       
other      BGP        ---        start  00:41:07      Active
sw9        BGP        ---        start  00:41:07      Active
`
	want := []BGPSession{
		{Switch: 1, Name: "sw1", State: "up", BGP: "Established"},
		{Switch: 2, Name: "sw2", State: "start", BGP: "Active", Info: "Socket: Connection closed"},
		{Switch: 3, Name: "sw3", State: "start", BGP: "Passive"},
	}
	got, err := parseBIRDProtocols(out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseBIRDProtocols (-want +got):\n%s", diff)
	}
	if _, err := parseBIRDProtocols("sw1 BGP ---  up\n"); err == nil {
		t.Error("parseBIRDProtocols: no error for a line without its time")
	}
}

func TestParseBFDSessions(t *testing.T) {
	out := `BIRD 2.0.12 ready.
bfd1:
IP address                Interface  State      Since         Interval  Timeout
198.18.0.4                eth0       Up         01:02:03         0.300    0.900
198.18.0.2                eth0       Down       01:02:03         1.000    0.000
`
	want := map[string]string{"198.18.0.4": "Up", "198.18.0.2": "Down"}
	if diff := cmp.Diff(want, parseBFDSessions(out)); diff != "" {
		t.Errorf("parseBFDSessions (-want +got):\n%s", diff)
	}
}

func TestParseFRR(t *testing.T) {
	summary := `{"ipv4Unicast":{"routerId":"198.18.0.1","as":65000,"peers":{
		"198.18.0.2":{"remoteAs":65010,"state":"Established","peerState":"OK"},
		"198.18.0.3":{"remoteAs":65010,"state":"Active","peerState":"OK"},
		"198.18.0.4":{"remoteAs":65010,"state":"Idle (Admin)","peerState":"Admin"},
		"198.18.0.99":{"remoteAs":65010,"state":"Active","peerState":"OK"}}}}`
	want := []BGPSession{
		{Switch: 1, Name: "sw1", State: "up", BGP: "Established", Info: "OK"},
		{Switch: 2, Name: "sw2", State: "start", BGP: "Active", Info: "OK"},
		{Switch: 3, Name: "sw3", State: "down", BGP: "Idle", Info: "Admin"},
	}
	got, err := parseFRRSummary([]byte(summary))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseFRRSummary (-want +got):\n%s", diff)
	}
	bfd, err := parseFRRBFDPeers([]byte(`[{"multihop":false,"peer":"198.18.0.2","status":"down"},{"peer":"198.18.0.4","status":"up"}]`))
	if diff := cmp.Diff(map[string]string{"198.18.0.2": "Down", "198.18.0.4": "Up"}, bfd); err != nil || diff != "" {
		t.Errorf("parseFRRBFDPeers: %v (-want +got):\n%s", err, diff)
	}
	if _, err := parseFRRSummary([]byte("% Unknown command")); err == nil {
		t.Error("parseFRRSummary: no error for text that is not JSON")
	}
}

func TestParseRoutes(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []Route
	}{
		{"none", `[]`, []Route{}},
		{"one next hop", `[{"dst":"198.18.0.100","gateway":"198.18.0.2","dev":"eth0","protocol":"bird","metric":32,"flags":[]}]`,
			[]Route{{Protocol: "bird", Metric: 32, NextHops: []string{"198.18.0.2"}}}},
		{"ECMP and a static route", `[{"dst":"198.18.0.100","protocol":"static","flags":[],"nexthops":[` +
			`{"gateway":"198.18.0.4","dev":"eth0","weight":1,"flags":[]},{"gateway":"198.18.0.2","dev":"eth0","weight":1,"flags":[]}]},` +
			`{"dst":"198.18.0.100","gateway":"198.18.0.3","dev":"eth0","protocol":"bird","metric":32,"flags":[]}]`,
			[]Route{{Protocol: "static", NextHops: []string{"198.18.0.2", "198.18.0.4"}}, {Protocol: "bird", Metric: 32, NextHops: []string{"198.18.0.3"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRoutes([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseRoutes (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := parseRoutes([]byte("Error: ...")); err == nil {
		t.Error("parseRoutes: no error for text that is not JSON")
	}
}

// TestBIRDConfig checks that BIRD parses the router's configuration
// (bird -p), for one switch and for the most.
func TestBIRDConfig(t *testing.T) {
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("skipping: needs bird (Debian package bird2)")
	}
	for _, n := range []int{1, MaxSwitches} {
		conf := BIRDConfig(n)
		if got := strings.Count(conf, "protocol bgp sw"); got != n {
			t.Errorf("BIRDConfig(%d) has %d BGP sessions", n, got)
		}
		path := filepath.Join(t.TempDir(), "bird.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("bird", "-p", "-c", path).CombinedOutput(); err != nil {
			t.Errorf("bird -p on BIRDConfig(%d): %v\n%s\n%s", n, err, out, conf)
		}
	}
}

// TestFRRConfig checks that FRR's daemons take the router's configuration
// without an error: their -C dry run exits 0 either way, and names the
// "config line" of each error, or the "configuration file" it could not
// read.
func TestFRRConfig(t *testing.T) {
	if err := (frrDaemon{}).missing(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	for _, n := range []int{1, MaxSwitches} {
		// Not t.TempDir, inside a directory the frr user cannot enter.
		dir, err := os.MkdirTemp("", "frrconfig")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range FRRConfig(n) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			daemon := strings.TrimSuffix(name, ".conf")
			out, err := exec.Command(frrDir+daemon, "-C", "-f", path, "--log", "stdout", "-u", "frr", "-g", "frr").CombinedOutput()
			if err != nil || strings.Contains(string(out), "config line") || strings.Contains(string(out), "configuration file") {
				t.Errorf("%s -C on FRRConfig(%d)'s %s: %v\n%s\n%s", daemon, n, name, err, out, content)
			}
		}
		if got := strings.Count(FRRConfig(n)["bgpd.conf"], "peer-group switches\n"); got != n {
			t.Errorf("FRRConfig(%d) has %d switches in its peer group", n, got)
		}
	}
}

// speakerConfig is the configuration of a stand-in for switch i's BGP
// speaker, BIRD itself: it connects to the router from the switch's
// address as SwitchAS and announces the VIP/32 with itself as next hop,
// as a switch with [bgp] does; with bfd, it runs BFD on the session too.
// It sends its route 3 s after the session is up when the router does no
// graceful restart (GoBGP at once: its route is in within a second).
func speakerConfig(i int, bfd bool) string {
	var bfdProto, bfdOn string
	if bfd {
		bfdProto = "protocol bfd {\n\tinterface \"eth0\" {\n\t\tinterval 300 ms;\n\t\tmultiplier 3;\n\t};\n}\n"
		bfdOn = "\tbfd on;\n"
	}
	return fmt.Sprintf(`log stderr all;
router id %[1]s;
protocol device {
}
protocol static {
	ipv4;
	route %[2]s/32 blackhole;
}
%[6]sprotocol bgp upstream {
	local %[1]s as %[3]d;
	neighbor %[4]s as %[5]d;
	connect delay time 1;
	connect retry time 1;
	error wait time 1, 2;
%[7]s	ipv4 {
		import none;
		export where net = %[2]s/32;
	};
}
`, SwitchAddr(i), VIP, SwitchAS, RouterIP, RouterAS, bfdProto, bfdOn)
}

// startSpeaker starts BIRD in switch i's namespace as its BGP speaker
// (speakerConfig).
func startSpeaker(t *testing.T, tb *Testbed, i int, bfd bool) *Proc {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "speaker.conf")
	if err := os.WriteFile(conf, []byte(speakerConfig(i, bfd)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := tb.Start(SwitchHost(i), filepath.Join(dir, "speaker.log"), "bird", "-f", "-c", conf, "-s", filepath.Join(dir, "speaker.ctl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(p.Log)
			t.Logf("switch %d's speaker log:\n%s", i, log)
		}
	})
	return p
}

// TestRouted brings the routed testbed up with 3 switches and each
// router, BIRD and FRR, and checks the plumbing: the router's sysctls,
// reachability through it, its BGP sessions waiting for the switches, a
// static route to the VIP, then BGP with stand-in speakers (BIRD in the
// switch namespaces): one ECMP route with 3 next hops, a killed speaker's
// next hop gone and back when it starts again, a dead host's gone by BFD;
// and Down leaves nothing behind.
func TestRouted(t *testing.T) {
	needRoot(t)
	// The route each router installs.
	routes := map[string]Route{RouterBIRD: {Protocol: "bird", Metric: 32}, RouterFRR: {Protocol: "bgp", Metric: 20}}
	for _, router := range []string{RouterBIRD, RouterFRR} {
		t.Run(router, func(t *testing.T) {
			if err := routerDaemons[router].missing(); err != nil {
				t.Skipf("skipping: %v", err)
			}
			testRouted(t, router, routes[router])
		})
	}
}

// testRouted is TestRouted with one router, whose route to the VIP is
// like route.
func testRouted(t *testing.T, router string, route Route) {
	start := time.Now()
	tb := upTestbed(t, Config{Switches: 3, Router: router})
	t.Logf("Up took %v: %s", time.Since(start), tb.Describe())
	logRouter := func(t *testing.T) {
		if t.Failed() {
			for _, f := range tb.RouterLogs() {
				log, _ := os.ReadFile(f)
				t.Logf("router log %s:\n%s", filepath.Base(f), log)
			}
		}
	}

	t.Run("namespaces", func(t *testing.T) {
		var want []string
		for _, h := range []string{"be1", "be2", "cli", "lan", "rtr", "sw", "sw2", "sw3"} {
			want = append(want, tb.NS(h))
		}
		if got := namespacesWithPrefix(t, tb.Prefix); !slices.Equal(got, want) {
			t.Errorf("namespaces %v, want %v", got, want)
		}
	})

	t.Run("router sysctls", func(t *testing.T) {
		for file, want := range map[string]string{
			"ip_forward":                  "1",
			"fib_multipath_hash_policy":   "1",
			"conf/all/rp_filter":          "0",
			"conf/eth0/rp_filter":         "0",
			"conf/eth1/rp_filter":         "0",
			"conf/default/send_redirects": "0",
		} {
			out, err := tb.Run("rtr", "cat", "/proc/sys/net/ipv4/"+file)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out); got != want {
				t.Errorf("rtr net.ipv4.%s = %s, want %s", file, got, want)
			}
		}
	})

	t.Run("through the router", func(t *testing.T) {
		for _, h := range []string{"be1", "sw3", "rtr"} {
			if err := ping(tb, "cli", tb.IP(h)); err != nil {
				t.Errorf("client to %s: %v", h, err)
			}
		}
		if err := ping(tb, "be2", RoutedClientIP); err != nil {
			t.Errorf("be2 to the client: %v", err)
		}
		cliCC, beCC, err := transfer(tb, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if cliCC != "cubic" || beCC != "cubic" {
			t.Errorf("congestion control: client %q, back-end %q, want cubic", cliCC, beCC)
		}
		out, err := tb.Run("be1", "ip", "route", "get", RoutedClientIP, "from", VIP)
		if err != nil || !strings.Contains(out, "via "+RouterIP) {
			t.Errorf("be1's route from the VIP to the client: %q %v, want via %s", out, err, RouterIP)
		}
	})

	t.Run("sessions wait for the switches", func(t *testing.T) {
		sessions, err := tb.BGPSessions()
		if err != nil {
			t.Fatal(err)
		}
		if len(sessions) != 3 {
			t.Fatalf("BGP sessions %+v, want 3", sessions)
		}
		for i, s := range sessions {
			if s.Switch != i+1 || s.State != "start" || s.BGP == "Established" {
				t.Errorf("session %d: %+v, want switch %d started and waiting", i, s, i+1)
			}
		}
		if rt, err := tb.VIPRoute(); err != nil || len(rt.NextHops) != 0 {
			t.Errorf("route to the VIP with no switch announcing it: %+v %v, want none", rt, err)
		}
	})

	t.Run("static route", func(t *testing.T) {
		if err := tb.RouteVIP(1, 3); err != nil {
			t.Fatal(err)
		}
		want := Route{Protocol: "static", NextHops: []string{SwitchAddr(1), SwitchAddr(3)}}
		if rt, err := tb.VIPRoute(); err != nil || !cmp.Equal(rt, want) {
			t.Errorf("VIPRoute after RouteVIP(1, 3) = %+v %v, want %+v", rt, err, want)
		}
		for range 2 {
			if err := tb.RouteVIP(); err != nil {
				t.Errorf("RouteVIP(): %v", err)
			}
		}
		if rt, err := tb.VIPRoute(); err != nil || len(rt.NextHops) != 0 {
			t.Errorf("VIPRoute after RouteVIP() = %+v %v, want none", rt, err)
		}
		if err := tb.RouteVIP(4); err == nil {
			t.Error("RouteVIP(4) with 3 switches: no error")
		}
	})

	t.Run("BGP", func(t *testing.T) {
		defer logRouter(t)
		speakers := make([]*Proc, 4)
		for i := 1; i <= 3; i++ {
			speakers[i] = startSpeaker(t, tb, i, i == 3)
		}
		if _, err := tb.WaitBGP("Established", 15*time.Second); err != nil {
			t.Fatal(err)
		}
		rt, err := tb.WaitVIPNextHops(3, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		route.NextHops = []string{SwitchAddr(1), SwitchAddr(2), SwitchAddr(3)}
		if want := route; !cmp.Equal(rt, want) {
			t.Errorf("route %+v, want %+v", rt, want)
		}
		killed := time.Now()
		if err := speakers[2].Kill(); err != nil {
			t.Fatal(err)
		}
		if _, err := tb.WaitVIPNextHops(2, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("switch 2's next hop gone %v after its speaker was killed", time.Since(killed).Round(time.Millisecond))
		restarted := time.Now()
		speakers[2] = startSpeaker(t, tb, 2, false)
		if _, err := tb.WaitVIPNextHops(3, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("switch 2's next hop back %v after its speaker started again", time.Since(restarted).Round(time.Millisecond))

		// Switch 3 runs BFD; its host dies without closing its session
		// (the BGP hold time, 240 s here, would take minutes).
		bfd, err := tb.BFDSessions()
		if err != nil || bfd[SwitchAddr(3)] != "Up" || bfd[SwitchAddr(1)] == "Up" {
			t.Errorf("BFD sessions %v %v, want switch 3's up, switch 1's not", bfd, err)
		}
		dead := time.Now()
		if _, err := tb.Run(SwitchHost(3), "ip", "link", "set", "eth0", "down"); err != nil {
			t.Fatal(err)
		}
		if rt, err := tb.WaitVIPNextHops(2, 3*time.Second); err != nil || slices.Contains(rt.NextHops, SwitchAddr(3)) {
			t.Fatalf("route %+v %v, want switch 3's next hop gone by BFD", rt, err)
		}
		t.Logf("switch 3's next hop gone %v after its link went down (BFD)", time.Since(dead).Round(time.Millisecond))
	})

	t.Run("Down", func(t *testing.T) {
		procs := tb.routerProcs
		if len(procs) == 0 {
			t.Fatal("no router processes")
		}
		if err := tb.Down(); err != nil {
			t.Fatal(err)
		}
		if left := namespacesWithPrefix(t, tb.Prefix); len(left) != 0 {
			t.Errorf("namespaces left after Down: %v", left)
		}
		for _, p := range procs {
			if alive(p.Cmd.Process.Pid) {
				t.Errorf("%s (pid %d) survived Down", p.Cmd.Args[3], p.Cmd.Process.Pid)
			}
		}
		if _, err := os.Stat(RouterDir(tb.Prefix)); !os.IsNotExist(err) {
			t.Errorf("router directory after Down: %v, want it gone", err)
		}
	})
}
