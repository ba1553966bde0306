package site

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"

	"webswitch/bench/testbed"
)

// TestBGPConfig checks that a switch's configuration with its [bgp] table
// is TOML with the keys of issue 12.
func TestBGPConfig(t *testing.T) {
	var got struct {
		BGP struct {
			ASN        int    `toml:"asn"`
			RouterID   string `toml:"router_id"`
			HoldTime   string `toml:"hold_time"`
			ListenPort int    `toml:"listen_port"`
			Peer       []struct {
				Address string `toml:"address"`
				ASN     int    `toml:"asn"`
			} `toml:"peer"`
		} `toml:"bgp"`
	}
	conf := SwitchConfig("/secret", 2, false, "", "") + BGPConfig(2)
	if _, err := toml.Decode(conf, &got); err != nil {
		t.Fatalf("switch configuration with BGPConfig(2): %v\n%s", err, conf)
	}
	b := got.BGP
	if b.ASN != testbed.SwitchAS || b.RouterID != "198.18.0.3" || b.HoldTime != "3s" || b.ListenPort != 179 ||
		len(b.Peer) != 1 || b.Peer[0].Address != testbed.RouterIP || b.Peer[0].ASN != testbed.RouterAS {
		t.Errorf("[bgp] of switch 2: %+v", b)
	}
}

// TestStartRefuses checks the configurations Start rejects before it
// builds anything.
func TestStartRefuses(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want error
	}{
		{Config{Switches: 2}, ErrSwitches},
		{Config{BGP: true}, ErrBGP},
	} {
		if _, err := Start(tc.cfg); !errors.Is(err, tc.want) {
			t.Errorf("Start(%+v): %v, want %v", tc.cfg, err, tc.want)
		}
	}
}

// TestRoutedSite runs today's switches (without BGP) in the routed
// testbed: two switches, the client behind BIRD's router. It checks the
// plumbing that the cluster tests build on: the router's sessions wait for
// the switches, the site's static ECMP route spreads connections over
// both switches and their answers reach the client through the router,
// one switch alone carries everything when the route names it alone, a
// killed switch starts again (StartSwitchN), and Down leaves nothing.
func TestRoutedSite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "bird", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: needs %s: %v", tool, err)
		}
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin, "webswitch/cmd/webswitch", "webswitch/cmd/handoffd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	www := t.TempDir()
	body := make([]byte, 1<<20)
	rand.Read(body)
	sum := sha256.Sum256(body)
	if err := WriteFiles(www, map[string][]byte{"static/1m.bin": body, "index.html": []byte("hello\n")}); err != nil {
		t.Fatal(err)
	}
	s, err := Start(Config{BinDir: bin, Dir: t.TempDir(), Static1: www, Static2: www, Shards: 1,
		Switches: 2, Router: testbed.RouterBIRD, AdminPort: 9100})
	if err != nil {
		t.Fatal(err)
	}
	tb := s.TB
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.Logs())
		}
		s.Down()
	})

	if rt, err := tb.VIPRoute(); err != nil || !cmp.Equal(rt.NextHops, []string{testbed.SwitchIP, testbed.SwitchAddr(2)}) {
		t.Errorf("the router's route to the VIP: %+v %v, want static through both switches", rt, err)
	}
	sessions, err := tb.BGPSessions()
	if err != nil || len(sessions) != 2 || sessions[0].BGP == "Established" || sessions[1].BGP == "Established" {
		t.Errorf("BGP sessions %+v %v, want 2, waiting for switches without BGP", sessions, err)
	}
	if len(s.Switches) != 2 || s.Switch != s.Switches[0] || s.SwitchLogs[1] != filepath.Join(s.Dir, "webswitch-sw2.log") {
		t.Errorf("switches %v, logs %v", s.Switches, s.SwitchLogs)
	}
	for i, want := range []string{"198.18.0.2:9100", "198.18.0.3:9100"} {
		if s.AdminAddr(i) != want {
			t.Errorf("AdminAddr(%d) = %s, want %s", i, s.AdminAddr(i), want)
		}
		if out, err := tb.Run(testbed.SwitchHost(i+1), "curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://"+want+"/readyz"); err != nil || out != "200" {
			t.Errorf("switch %d's admin API: %q %v", i, out, err)
		}
	}

	// fetch downloads the 1 MiB file on n connections, one after the
	// other, and returns how many connections each switch took (its SYN
	// cookies sent) meanwhile.
	fetch := func(n int) [2]int {
		t.Helper()
		var before, after [2]int
		for i := range before {
			before[i] = synACKs(t, s, i)
		}
		out, err := tb.Run("cli", "sh", "-c", fmt.Sprintf("for i in $(seq %d); do curl -sS -m 10 %s/static/1m.bin | sha256sum; done", n, VIPURL))
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Repeat(hex.EncodeToString(sum[:])+"  -\n", n)
		if out != want {
			t.Errorf("%d downloads through the router: sums\n%s\nwant %d of %x", n, out, n, sum)
		}
		for i := range after {
			after[i] = synACKs(t, s, i) - before[i]
		}
		return after
	}

	t.Run("ECMP over both switches", func(t *testing.T) {
		conns := fetch(16)
		t.Logf("connections taken by the switches: %v", conns)
		if conns[0] == 0 || conns[1] == 0 || conns[0]+conns[1] != 16 {
			t.Errorf("connections taken by the switches: %v, want 16 spread over both", conns)
		}
	})

	t.Run("one switch", func(t *testing.T) {
		if err := tb.RouteVIP(2); err != nil {
			t.Fatal(err)
		}
		if conns := fetch(4); conns != [2]int{0, 4} {
			t.Errorf("connections taken by the switches: %v, want all 4 by the second (routed alone)", conns)
		}
	})

	t.Run("kill and start switch 1", func(t *testing.T) {
		old := s.Switches[1]
		if err := s.KillSwitchN(1); err != nil {
			t.Fatal(err)
		}
		if out, err := tb.Run("cli", "curl", "-sS", "-m", "1", VIPURL+"/"); err == nil {
			t.Errorf("curl through a killed switch: %q, want a failure", out)
		}
		if err := s.StartSwitchN(1); err != nil {
			t.Fatal(err)
		}
		if s.Switches[1] == old || s.SwitchLogs[1] == old.Log {
			t.Errorf("StartSwitchN(1) did not replace the process and its log: %s", s.SwitchLogs[1])
		}
		fetch(2)
	})

	t.Run("Down", func(t *testing.T) {
		var pids []int
		for _, p := range append(slices.Clone(s.Switches), s.Agents...) {
			pids = append(pids, p.Cmd.Process.Pid)
		}
		if err := s.Down(); err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				t.Errorf("process %d survived Down", pid)
			}
		}
		out, err := exec.Command("ip", "netns", "list").CombinedOutput()
		if err != nil || strings.Contains(string(out), tb.Prefix+"-") {
			t.Errorf("namespaces after Down: %v\n%s", err, out)
		}
		if _, err := os.Stat(testbed.RouterDir(tb.Prefix)); !os.IsNotExist(err) {
			t.Errorf("router directory after Down: %v", err)
		}
		if out, _ := exec.Command("pgrep", "-f", testbed.RouterDir(tb.Prefix)).Output(); len(out) != 0 {
			t.Errorf("bird still running after Down: %s", out)
		}
	})
}

// synACKs returns how many SYN-ACKs switch i has sent: the connections it
// took.
func synACKs(t *testing.T, s *Site, i int) int {
	t.Helper()
	c, err := s.ShardCountersN(i)
	if err != nil {
		t.Fatal(err)
	}
	return int(SumCounter(c, "syn_acks"))
}
