package scenario

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"webswitch/bench/report"
)

// TestTinyRun runs every set-up on a small scale, as `wsbench run` does,
// and checks that each row measured real, error-free traffic and that the
// report is written. It asserts no speed.
func TestTinyRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("brings up a test network: needs root (CI runs it as root)")
	}
	for _, tool := range []string{"ip", "curl", "wrk", "haproxy", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (.ci/run installs it)", tool)
		}
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "webswitch/cmd/...").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := Config{
		BinDir: bin, Sizes: []int64{KiB, 100 * KiB}, CloseSizes: []int64{KiB}, Setups: DefaultSetups,
		Duration: time.Second, Warmup: 200 * time.Millisecond, Connections: 4, Wrk: true, Shards: 1,
		Command: "TestTinyRun",
	}
	rep, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := (len(cfg.Sizes) + len(cfg.CloseSizes)) * len(cfg.Setups); len(rep.Rows) != want {
		t.Fatalf("%d rows, want %d", len(rep.Rows), want)
	}
	for _, r := range rep.Rows {
		l := r.Load
		t.Logf("%-9s %6d keep-alive=%-5v %8.0f req/s cpu/1k %.4f wrk %+v", r.Setup, r.Size, r.KeepAlive, l.RPS, r.CPUPer1k, r.Wrk)
		if l.Requests == 0 || len(l.Errors) != 0 || l.BodyBytes != l.Requests*uint64(r.Size) {
			t.Errorf("%s %d: %d requests, errors %v, %d body bytes", r.Setup, r.Size, l.Requests, l.Errors, l.BodyBytes)
		}
		if direct := r.Setup == report.SetupDirect; direct != (r.CPUPer1k == -1) || r.CPUPer1k < -1 {
			t.Errorf("%s: CPU per 1k requests %v", r.Setup, r.CPUPer1k)
		}
		if !r.KeepAlive && l.Connects < l.Requests {
			t.Errorf("%s new-conn: %d connects for %d requests", r.Setup, l.Connects, l.Requests)
		}
		wantWrk := r.KeepAlive && (r.Setup == report.SetupWebswitch || r.Setup == report.SetupHAProxy)
		if wantWrk != (r.Wrk != nil) || r.Wrk != nil && (r.Wrk.RPS == 0 || r.Wrk.Errors != 0) {
			t.Errorf("%s %d keep-alive=%v: wrk %+v", r.Setup, r.Size, r.KeepAlive, r.Wrk)
		}
	}
	if len(rep.Targets) == 0 {
		t.Error("no targets evaluated")
	}
	out := t.TempDir()
	if err := report.Write(out, rep); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.md", "report.json", "throughput.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}
