package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestDrain is the graceful stop: SIGTERM during a rate-limited 100 MiB
// download. The download completes byte-exact; a new connection 0.5 s
// after the SIGTERM is refused (a RST: curl's "connection refused"); the
// switch exits 0 once the download's flow has ended.
func TestDrain(t *testing.T) {
	needRoot(t, "ip", "curl", "sha256sum")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	bigSum := randomFile(t, filepath.Join(www, "static", "100m.bin"), 100*mib)
	cfg := siteConfig(t, true, www)
	cfg.SwitchKeys = "drain_timeout = \"30s\"\nlinger = \"1s\"\n"
	s := startSiteConfig(t, cfg)

	big := s.download(vipURL+"/static/100m.bin", "25M")
	time.Sleep(time.Second)
	if err := s.Switch.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	term := time.Now()
	time.Sleep(500 * time.Millisecond)
	out, err := s.tb.Command("cli", "curl", "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", vipURL+"/static/small.txt").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Errorf("a new connection 0.5 s into the drain: %v, %q; want it refused (curl exit 7)", err, out)
	}
	if sum, err := big(); err != nil || sum != bigSum {
		t.Errorf("100 MiB download across the drain: %v, sha256 %q, want %s", err, sum, bigSum)
	}
	done := time.Now()
	select {
	case <-s.Switch.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the switch still runs 10 s after the download ended")
	}
	if err := s.Switch.Wait(); err != nil {
		t.Errorf("the switch exited with %v, want status 0", err)
	}
	log, _ := os.ReadFile(s.SwitchLog)
	if !bytes.Contains(log, []byte("drained: no flow left")) {
		t.Errorf("the switch's log has no \"drained\" line")
	}
	t.Logf("download done %.1f s after the SIGTERM; the switch exited %.1f s after it (linger 1 s)", done.Sub(term).Seconds(), time.Since(done).Seconds())
}
