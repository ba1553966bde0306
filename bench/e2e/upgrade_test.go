package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"webswitch/bench/load"
	benchsite "webswitch/bench/site"
)

// TestKillRestart crashes the switch (SIGKILL) and starts it again half a
// second later with the same arguments: a new process answers a new
// request byte-exact, and the teardown stops it.
func TestKillRestart(t *testing.T) {
	needRoot(t, "ip", "curl")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "small.txt"), smallBody)
	s := startSiteConfig(t, benchsite.Config{Static1: www, Static2: www, Balanced: true, Shards: 2, Offloads: true})
	if got := s.curl(vipURL + "/small.txt"); got != smallBody {
		t.Fatalf("before: %q, want %q", got, smallBody)
	}
	oldPID := s.Switch.Cmd.Process.Pid
	if err := s.KillSwitch(); err != nil {
		t.Fatal(err)
	}
	if alive(oldPID) {
		t.Fatalf("switch PID %d still there after KillSwitch", oldPID)
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if err := s.StartSwitch(); err != nil {
		t.Fatal(err)
	}
	ready := time.Since(start)
	newPID := s.Switch.Cmd.Process.Pid
	if newPID == oldPID {
		t.Errorf("the restarted switch has the old PID %d", oldPID)
	}
	if got := s.curl(vipURL + "/small.txt"); got != smallBody {
		t.Errorf("after the restart: %q, want %q", got, smallBody)
	}
	if s.SwitchLog != s.Switch.Log || s.SwitchLog == filepath.Join(s.Dir, "webswitch.log") {
		t.Errorf("SwitchLog %s, want the new process's own log %s", s.SwitchLog, s.Switch.Log)
	}
	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	if alive(newPID) {
		t.Errorf("the restarted switch (PID %d) survived the teardown", newPID)
	}
	t.Logf("switch PID %d killed, PID %d serving %v after its start", oldPID, newPID, ready.Round(time.Millisecond))
}

// alive reports whether process pid exists.
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// switchIdentity is the part of the switch's GET /version that the tests
// read.
type switchIdentity struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Version string    `json:"version"`
	SHA256  string    `json:"sha256"`
	Upgrade *struct {
		From    string        `json:"from"`
		Stopped time.Time     `json:"stopped"`
		Exec    time.Time     `json:"exec"`
		Gap     time.Duration `json:"gap_ns"`
	} `json:"upgrade"`
}

// identity asks the switch's admin API who it is.
func (s *site) identity() switchIdentity {
	s.t.Helper()
	out, err := s.tb.Run("sw", "curl", "-sS", "-m", "5", "http://"+adminAddr+"/version")
	if err != nil {
		s.t.Fatal(err)
	}
	var id switchIdentity
	if err := json.Unmarshal([]byte(out), &id); err != nil {
		s.t.Fatalf("/version: %v: %s", err, out)
	}
	return id
}

// upgradeBinaries returns a directory with the site's own copies of the
// binaries (a test installs a new webswitch over them) and a webswitch
// built with version, to upgrade to.
func upgradeBinaries(t *testing.T, version string) (bin, newBin string) {
	t.Helper()
	bin, newBin = t.TempDir(), filepath.Join(t.TempDir(), "webswitch")
	for _, name := range []string{"webswitch", "handoffd"} {
		install(t, filepath.Join(buildBinaries(t), name), filepath.Join(bin, name))
	}
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", newBin, "webswitch/cmd/webswitch").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin, newBin
}

// TestUpgrade upgrades the switch in place (webswitch ctl upgrade) under
// load, after two refused tries: a truncated binary (by SIGUSR2), and a
// configuration the new binary refuses (by ctl upgrade), which must leave
// the old process serving. The upgrade keeps the PID, changes the build,
// leaves the old process's sockets behind, and loses no request of a
// stream of new connections and of keep-alive connections. The new process
// upgrades again.
func TestUpgrade(t *testing.T) {
	needRoot(t, "ip", "curl", "install")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "1k.txt"), strings.Repeat("x", 1024))
	const newVersion = "e2e-upgraded"
	bin, newBin := upgradeBinaries(t, newVersion)
	s := startSiteConfig(t, benchsite.Config{BinDir: bin, Static1: www, Static2: www, Balanced: true, Shards: 2, Offloads: true,
		SwitchKeys: "[admin]\nlisten = \"" + adminAddr + "\"\n"})
	pid := s.Switch.Cmd.Process.Pid
	before := s.identity()
	if before.PID != pid {
		t.Fatalf("/version: PID %d, want %d", before.PID, pid)
	}

	// Refused: the old process goes on.
	truncated := filepath.Join(t.TempDir(), "webswitch")
	data, err := os.ReadFile(newBin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, truncated, string(data[:len(data)/2]))
	install(t, truncated, filepath.Join(bin, "webswitch"))
	if err := s.Switch.Cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	s.waitLog("upgrade refused: the running process stays", 5*time.Second)
	install(t, newBin, filepath.Join(bin, "webswitch"))
	config := filepath.Join(s.Dir, "switch.toml")
	good, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, config, string(good)+"bogus_key = 1\n")
	if out, err := s.ctl("upgrade"); err == nil || !strings.Contains(out, "bogus_key") {
		t.Errorf("upgrade with a configuration it refuses: %v\n%s\nwant it refused, naming the key", err, out)
	}
	writeFile(t, config, string(good))
	if id := s.identity(); id.PID != pid || !id.Started.Equal(before.Started) {
		t.Fatalf("after the refusals: %+v, want the old process %+v", id, before)
	}

	// The upgrade, 1.5 s into 4 s of load.
	wsbench := buildWsbench(t)
	args := []string{"-url", vipURL + "/1k.txt", "-d", "4s", "-timeout", "3s"}
	newConns := s.startLoad(wsbench, append(args, "-c", "8", "-keepalive=false")...)
	keepAlive := s.startLoad(wsbench, append(args, "-c", "4")...)
	time.Sleep(1500 * time.Millisecond)
	oldSockets := sockets(t, pid) // rings, ARP, control connections, admin listener
	if len(oldSockets) < 2*(1+2)+2 {
		t.Fatalf("the switch has %d sockets open, want at least its rings, control connections, ARP socket and admin listener", len(oldSockets))
	}
	out, err := s.ctl("upgrade", "-timeout", "10s")
	if err != nil {
		t.Fatalf("ctl upgrade: %v\n%s", err, out)
	}
	results := map[string]load.Result{"new connections": newConns(), "keep-alive": keepAlive()}
	after := s.identity()
	t.Logf("ctl upgrade:\n%s", out)
	select {
	case <-s.Switch.Done():
		t.Fatalf("the switch process exited: %v", s.Switch.Wait())
	default:
	}
	if after.PID != pid || after.Started.Equal(before.Started) || after.Version != newVersion || after.SHA256 == before.SHA256 || after.Upgrade == nil {
		t.Errorf("after the upgrade: %+v; want PID %d, a new start, version %s, another sha256 than %s, an upgrade record", after, pid, newVersion, before.SHA256)
	} else {
		u := after.Upgrade
		t.Logf("upgraded PID %d from %s to %s: data path stopped for %v, from the stop request until the new process's rings were open: %v for the old one to stop, %v for the exec and the Go runtime's start, %v for the new one's set-up",
			pid, u.From, after.Version, u.Gap.Round(time.Millisecond), u.Exec.Sub(u.Stopped).Round(time.Millisecond),
			after.Started.Sub(u.Exec).Round(time.Millisecond), (u.Gap - after.Started.Sub(u.Stopped)).Round(time.Millisecond))
	}
	for sock := range sockets(t, pid) {
		if oldSockets[sock] {
			t.Errorf("the new process has the old one's %s: not close-on-exec", sock)
		}
	}
	var failed uint64
	for name, r := range results {
		var n uint64
		for _, e := range r.Errors {
			n += e
		}
		failed += n
		t.Logf("%s: %d requests, %d failed %v; p99 %.1f ms, max %.1f ms", name, r.Requests, n, r.Errors, r.Latency.P99, r.Latency.Max)
	}
	c := s.shardCounters()
	t.Logf("the new process since its start: drops %v, HTTP errors it answered %v, resets %v, handoffs refused %v (retried %v)",
		counterSum(c, "drops"), counterSum(c, "http_errors"), counterSum(c, "resets")[""], counterSum(c, "handoffs_err")[""], counterSum(c, "handoff_retries")[""])
	if failed != 0 {
		t.Errorf("%d requests failed across the upgrade, want none", failed)
	}

	// An upgraded process upgrades again (here to the same binary).
	if out, err := s.ctl("upgrade"); err != nil || !strings.Contains(out, "the binary is the same as before") {
		t.Errorf("second upgrade: %v\n%s\nwant it done, with a note that the binary is the same", err, out)
	}
	if again := s.identity(); again.PID != pid || again.Started.Equal(after.Started) || again.Upgrade == nil || again.Upgrade.From != after.Version+" (sha256 "+after.SHA256[:12]+")" {
		t.Errorf("after the second upgrade: %+v; want PID %d, a new start, upgraded from %s", again, pid, after.Version)
	}
}

// waitLog waits until the switch's log has the message msg.
func (s *site) waitLog(msg string, limit time.Duration) {
	s.t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		if log, _ := os.ReadFile(s.SwitchLog); strings.Contains(string(log), `"message":"`+msg+`"`) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the switch did not log %q within %v", msg, limit)
		}
	}
}

// sockets returns the sockets process pid has open ("socket:[INODE]").
func sockets(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && strings.HasPrefix(target, "socket:") {
			out[target] = true
		}
	}
	return out
}

// install installs src at dst as an operator would (install(1) writes a
// new file: the running binary is left alone).
func install(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("install", "-m", "0755", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("install: %v: %s", err, out)
	}
}
