package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"webswitch/bench/testbed"
)

const adminAddr = "198.18.0.2:9100" // the switch's own address, never the VIP

// ctl runs webswitch ctl in the switch's namespace and returns its output
// and error.
func (s *site) ctl(args ...string) (string, error) {
	bin := filepath.Join(buildBinaries(s.t), "webswitch")
	return s.tb.Run("sw", bin, append([]string{"ctl", "-admin", adminAddr}, args...)...)
}

// metric returns the sum of a Prometheus counter or gauge over the series
// whose labels contain every one of want ("name=value").
func (s *site) metric(name string, want ...string) float64 {
	s.t.Helper()
	out, err := s.tb.Run("sw", "curl", "-sS", "-m", "5", "http://"+adminAddr+"/metrics")
	if err != nil {
		s.t.Fatalf("scrape: %v", err)
	}
	var sum float64
	line := regexp.MustCompile(`^webswitch_` + name + `(\{[^}]*\})? (\S+)$`)
	for _, l := range strings.Split(out, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ok := true
		for _, w := range want {
			k, v, _ := strings.Cut(w, "=")
			ok = ok && strings.Contains(m[1], k+`="`+v+`"`)
		}
		if ok {
			f, _ := strconv.ParseFloat(m[2], 64)
			sum += f
		}
	}
	return sum
}

// TestOperations runs the operator's tools against a switch under load:
// metrics that move, ctl backends and flows showing a download, a reload
// during a 100 MiB download and a keep-alive session (both byte-exact,
// the new rule in effect, a broken file refused with its key named), and
// a capture that tshark reads.
func TestOperations(t *testing.T) {
	needRoot(t, "ip", "curl", "sha256sum", "tshark")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	writeFile(t, filepath.Join(www, "moved", "small.txt"), "moved to be1\n")
	bigSum := randomFile(t, filepath.Join(www, "static", "100m.bin"), 100*mib)
	randomFile(t, filepath.Join(www, "static", "1m.bin"), mib)
	cfg := siteConfig(t, true, www)
	cfg.SwitchKeys = "[admin]\nlisten = \"" + adminAddr + "\"\n"
	s := startSiteConfig(t, cfg)

	// Metrics move with traffic.
	frames, ok := s.metric("frames_received_total"), s.metric("backend_handoffs_total", "backend=be1", "result=ok")
	for range 5 {
		if got := s.curl(vipURL + "/static/small.txt"); got != smallBody {
			t.Fatalf("GET: %q", got)
		}
	}
	if f, o := s.metric("frames_received_total"), s.metric("backend_handoffs_total", "backend=be1", "result=ok"); f <= frames || o != ok+5 {
		t.Errorf("metrics after 5 requests to be1: frames %v -> %v, be1 handoffs ok %v -> %v; want frames up and 5 more handoffs", frames, f, ok, o)
	}
	if u := s.metric("backend_usable", "backend=be2"); u != 2 {
		t.Errorf("be2 usable on %v shards, want 2", u)
	}
	if out, err := s.tb.Run("sw", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://"+adminAddr+"/readyz"); err != nil || out != "200" {
		t.Errorf("/readyz: %s %v, want 200", out, err)
	}

	// A 100 MiB download and a keep-alive session run across the reloads.
	var bigOut, sessOut bytes.Buffer
	big := s.tb.Command("cli", "sh", "-c", "curl -sS -m 60 --limit-rate 25M "+vipURL+"/static/100m.bin | sha256sum")
	big.Stdout = &bigOut
	sess := s.tb.Command("cli", "sh", "-c", "curl -sS -m 60 --limit-rate 10M "+strings.TrimSpace(strings.Repeat(vipURL+"/static/1m.bin ", 30))+" | sha256sum")
	sess.Stdout = &sessOut
	for _, c := range []*exec.Cmd{big, sess} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	out, err := s.ctl("flows", "-backend", "be1", "-state", "spliced")
	if err != nil || strings.Count(out, "spliced") < 2 {
		t.Errorf("ctl flows during the downloads (want 2 spliced flows to be1):\n%s %v", out, err)
	}
	if out, err := s.ctl("backends"); err != nil || !regexp.MustCompile(`be1 .* up .* 2/2 shards`).MatchString(out) {
		t.Errorf("ctl backends:\n%s %v", out, err)
	}
	if active := s.metric("backend_active_flows", "backend=be1"); active < 2 {
		t.Errorf("be1 active flows %v during the downloads, want at least 2 (the census runs every second)", active)
	}

	if got := s.curl("-o", "/dev/null", "-w", "%{http_code}", vipURL+"/moved/small.txt"); got == "200" {
		t.Errorf("before the reload /moved/small.txt: %s, want be2's refusal (it has no such page)", got)
	}
	path := filepath.Join(s.Dir, "switch.toml")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(orig), "pool = \"static\"", "pool = \"nowhere\"", 1)
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := s.ctl("reload"); err == nil || !strings.Contains(out, "rule[0].pool") || !strings.Contains(out, `unknown pool "nowhere"`) {
		t.Errorf("reload of a broken file: %v\n%s\nwant a refusal naming rule[0].pool", err, out)
	}
	moved := strings.Replace(string(orig), "[[rule]]\npool = \"web\"", "[[rule]]\npath_prefix = \"/moved/\"\npool = \"static\"\n[[rule]]\npool = \"web\"", 1)
	if moved == string(orig) {
		t.Fatal("could not add the rule to the switch's file")
	}
	if err := os.WriteFile(path, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := s.ctl("reload"); err != nil || strings.TrimSpace(out) != "reloaded" {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	deadline := time.Now().Add(2 * time.Second)
	for got := ""; got != "moved to be1\n"; {
		if got = s.curl(vipURL + "/moved/small.txt"); time.Now().After(deadline) {
			t.Fatalf("after the reload /moved/small.txt: %q, want be1's file", got)
		}
	}
	if err := s.Switch.Cmd.Process.Signal(syscall.SIGHUP); err != nil { // the same file again, by signal
		t.Fatal(err)
	}

	// A capture of the next 20 frames, read by tshark.
	pcap := filepath.Join(t.TempDir(), "c.pcap")
	go func() {
		for range 10 {
			s.tb.Run("cli", "curl", "-sS", "-o", "/dev/null", vipURL+"/static/small.txt")
		}
	}()
	if out, err := s.ctl("capture", "-n", "20", "-o", pcap); err != nil {
		t.Fatalf("ctl capture: %v\n%s", err, out)
	}
	ts, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "ip.dst", "-e", "tcp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, ts)
	}
	lines := strings.Split(strings.TrimSpace(string(ts)), "\n")
	for _, l := range lines {
		if l != testbed.VIP+"\t80" {
			t.Errorf("tshark: frame %q, want TCP to %s:80", l, testbed.VIP)
		}
	}
	if len(lines) != 20 {
		t.Errorf("tshark read %d frames, want 20", len(lines))
	}

	for name, c := range map[string]*exec.Cmd{"download": big, "session": sess} {
		if err := c.Wait(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if got := strings.Fields(bigOut.String()); len(got) == 0 || got[0] != bigSum {
		t.Errorf("100 MiB download across the reloads: sha256 %q, want %s", bigOut.String(), bigSum)
	}
	if got, want := strings.Fields(sessOut.String()), repeatSum(t, filepath.Join(www, "static", "1m.bin"), 30); len(got) == 0 || got[0] != want {
		t.Errorf("keep-alive session across the reloads: sha256 %q, want %s", sessOut.String(), want)
	}
	logs, _ := os.ReadFile(s.SwitchLog)
	if n := len(regexp.MustCompile(`"config":"[^"]*".*"message":"configuration reloaded"`).FindAll(logs, -1)); n != 2 {
		t.Errorf("switch log: %d reloads, want 2 (ctl and SIGHUP)", n)
	}
	if n := bytes.Count(logs, []byte("reload refused")); n != 1 {
		t.Errorf("switch log: %d refused reloads, want 1", n)
	}
}
