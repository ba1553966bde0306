package scenario

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"webswitch/bench/report"
)

func TestParseWrk(t *testing.T) {
	out := `Running 2s test @ http://198.18.0.100/1m.bin
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.01ms    3.20ms  40.00ms   80.00%
    Req/Sec     1.33k    50.00     1.40k    70.00%
  2660 requests in 2.00s, 2.60GB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1330.00
Transfer/sec:      1.30GB
`
	w, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if w.RPS != 1330 || w.Errors != 7 || w.MBps < 1395 || w.MBps > 1396 {
		t.Errorf("parseWrk = %+v, want 1330 req/s, 1395.9 MB/s, 7 errors", *w)
	}
	if _, err := parseWrk("wrk: connection refused"); err == nil {
		t.Error("parseWrk of an error message succeeded")
	}
}

func TestSizes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int64
		file string
	}{{"1k", KiB, "1k.bin"}, {"100K", 100 * KiB, "100k.bin"}, {"1m", MiB, "1m.bin"}, {"10M", 10 * MiB, "10m.bin"}, {"1500", 1500, "1500.bin"}} {
		n, err := ParseSize(tt.in)
		if err != nil || n != tt.n || fileName(n) != tt.file {
			t.Errorf("ParseSize(%q) = %d, %v, file %s; want %d, %s", tt.in, n, err, fileName(n), tt.n, tt.file)
		}
	}
	for _, bad := range []string{"k", "0", "-1m", "1g", "x"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}

func TestTargets(t *testing.T) {
	row := func(setup string, size int64, keepAlive bool, rps, cpu float64, drops uint64) report.Row {
		r := report.Row{Setup: setup, Size: size, KeepAlive: keepAlive, CPUPer1k: cpu, RingDrops: drops}
		r.Load.RPS = rps
		return r
	}
	rows := []report.Row{
		row(report.SetupDirect, MiB, true, 1000, -1, 0),
		row(report.SetupWebswitch, MiB, true, 950, 0.01, 0),
		row(report.SetupHAProxy, MiB, true, 700, 0.2, 0),
		row(report.SetupWebswitch, KiB, false, 5000, 0.5, 3),
		row(report.SetupHAProxy, KiB, false, 6000, 0.4, 0),
	}
	got := map[string]bool{}
	for _, tg := range Targets(rows) {
		got[tg.Name] = tg.Met
		if tg.Got == "" {
			t.Errorf("%s: no figure", tg.Name)
		}
	}
	want := map[string]bool{
		"1 MiB keep-alive: webswitch req/s >= 0.9x direct":            true,  // 0.95
		"1 MiB keep-alive: webswitch req/s >= 1.5x HAProxy":           false, // 1.36
		"1 MiB keep-alive: switch CPU per request <= 0.1x HAProxy's":  true,  // 0.05
		"1 KiB new connections: switch CPU per request <= HAProxy's":  false, // 1.25
		"1 KiB new connections: webswitch connections/s >= HAProxy's": false, // 0.83
		"no ring drops at these loads":                                false, // 3
	}
	for name, met := range want {
		if m, ok := got[name]; !ok || m != met {
			t.Errorf("target %q: met=%v (present %v), want %v", name, m, ok, met)
		}
	}
	for _, tg := range Targets(nil) {
		if tg.Met || tg.Got != "not measured" {
			t.Errorf("no rows: %+v", tg)
		}
	}
}

// TestHAProxyConfig has HAProxy check its configuration (it binds nothing).
func TestHAProxyConfig(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy not installed (.ci/run installs it)")
	}
	dir := t.TempDir()
	if err := writeProxyConfigs(dir); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("haproxy", "-c", "-f", filepath.Join(dir, "haproxy.cfg")).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server be1 198.18.0.21:8080", "server be2 198.18.0.22:8080", "nbthread 1", "bind 198.18.0.2:8081"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
}
