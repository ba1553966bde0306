package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"webswitch/bench/load"
	benchsite "webswitch/bench/site"
)

// Health checks fast enough for a test: a silent back-end is down in
// 3 x 200 ms.
const fastHealth = `handoff_timeout = "1s"
[health]
interval = "200ms"
timeout = "200ms"
rise = 2
fall = 3
`

// backendFigures are one back-end's counters summed over the switch's
// shards.
type backendFigures struct {
	handoffsOK, handoffsFailed, downs uint64
	usable                            bool // on every shard
}

// backendState returns back-end name's figures.
func (s *site) backendState(name string) (f backendFigures) {
	s.t.Helper()
	f.usable = true
	for _, shard := range s.shardCounters() {
		list, _ := shard["backends"].([]any)
		found := false
		for _, x := range list {
			b, _ := x.(map[string]any)
			if b["name"] != name {
				continue
			}
			found = true
			ok, _ := b["handoffs_ok"].(float64)
			failed, _ := b["handoffs_failed"].(float64)
			d, _ := b["downs"].(float64)
			u, _ := b["usable"].(bool)
			f.handoffsOK += uint64(ok)
			f.handoffsFailed += uint64(failed)
			f.downs += uint64(d)
			f.usable = f.usable && u
		}
		if !found {
			s.t.Fatalf("no counters for back-end %s in %v", name, shard)
		}
	}
	return f
}

// waitBackend polls until every shard finds back-end name usable (or
// not), and returns how long that took.
func (s *site) waitBackend(name string, usable bool, limit time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	for {
		if s.backendState(name).usable == usable {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			s.t.Fatalf("back-end %s not usable=%v after %v", name, usable, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startLoad runs wsbench load in the client namespace and returns a
// function that waits for it and returns its result.
func (s *site) startLoad(wsbench string, args ...string) func() load.Result {
	s.t.Helper()
	var out bytes.Buffer
	cmd := s.tb.Command("cli", wsbench, append([]string{"load", "-json", "-warmup", "0"}, args...)...)
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return func() load.Result {
		s.t.Helper()
		if err := cmd.Wait(); err != nil {
			s.t.Fatalf("wsbench load: %v", err)
		}
		var r load.Result
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			s.t.Fatalf("wsbench load output: %v: %s", err, out.Bytes())
		}
		return r
	}
}

// TestBackendFailure kills be2's agent, which is also its server, with
// SIGKILL during a load of new connections over a pool of be1 and be2,
// then starts it again. The switch must see the death at once (the control
// connections break), send no new connection to be2 while it is dead, keep
// every client's wait under the request timeout, and give be2 traffic
// again once it is back. The only requests allowed to fail are those be2
// was serving, or had been handed, when it died: at most one per client.
func TestBackendFailure(t *testing.T) {
	needRoot(t, "ip", "curl")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "1k.txt"), strings.Repeat("x", 1024))
	s := startSiteConfig(t, benchsite.Config{Static1: www, Static2: www, Balanced: true, Shards: 2, Offloads: true, SwitchKeys: fastHealth})
	const clients = 8
	wait := s.startLoad(buildWsbench(t), "-url", vipURL+"/1k.txt", "-c", strconv.Itoa(clients), "-d", "8s",
		"-keepalive=false", "-timeout", "3s")

	time.Sleep(1500 * time.Millisecond)
	before := s.backendState("be2")
	if before.handoffsOK == 0 || !before.usable {
		t.Fatalf("be2 before the failure: %+v; want traffic", before)
	}
	errorsBefore := s.switchErrors()
	if err := s.Agents[1].Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	detect := s.waitBackend("be2", false, 2*time.Second)
	dead := s.backendState("be2")
	time.Sleep(2 * time.Second)
	if now := s.backendState("be2"); now.handoffsOK != dead.handoffsOK || now.handoffsFailed != dead.handoffsFailed {
		t.Errorf("be2 dead: %d more handoffs to it after every shard took it down", now.handoffsOK+now.handoffsFailed-dead.handoffsOK-dead.handoffsFailed)
	}
	s.Agents[1].Wait()
	if err := s.StartAgent(1); err != nil {
		t.Fatal(err)
	}
	recovery := s.waitBackend("be2", true, 8*time.Second)
	back := s.backendState("be2")
	time.Sleep(time.Second)
	again := s.backendState("be2")
	if again.handoffsOK == back.handoffsOK {
		t.Error("be2 back: no handoff to it in the second after it was usable again")
	}

	r := wait()
	var failed uint64
	for _, n := range r.Errors {
		failed += n
	}
	lost := again.handoffsFailed - before.handoffsFailed
	answered := s.switchErrors() - errorsBefore
	t.Logf("%d requests in %.1f s over be1 and be2, %d failed %v; be2: down in %v after SIGKILL (%d shard downs), %d handoffs lost with it, usable again %v after restart, %d handoffs to it since; p99 %.1f ms, max %.1f ms",
		r.Requests, r.Seconds, failed, r.Errors, detect.Round(time.Millisecond), again.downs, lost, recovery.Round(time.Millisecond), again.handoffsOK-back.handoffsOK, r.Latency.P99, r.Latency.Max)
	if r.Errors[load.ErrTimeout] != 0 {
		t.Errorf("%d requests waited past the 3 s timeout", r.Errors[load.ErrTimeout])
	}
	// A handoff be2 had when it died is forgotten, not answered: be2's
	// kernel may have re-created the socket before dying, and then reset
	// it (the client reads the reset); if it had not, the client
	// retransmits its request (the switch never acknowledged it), no agent
	// holds the connection, and it goes to be1 from its SYN cookie. So the
	// switch answers no error itself, and the only failures are those
	// resets, at most one per lost handoff.
	status, read := r.Errors[load.ErrStatus], r.Errors[load.ErrRead]
	if answered != 0 || status != 0 || read > lost {
		t.Errorf("%d error statuses and %d read errors, %d answered by the switch, %d handoffs lost with be2: want no status, none answered, at most one reset per lost handoff", status, read, answered, lost)
	}
	// Each shard can lose what it had sent to be2 before it saw the death:
	// at most one request per client.
	if shards := 2; lost > uint64(shards*clients) {
		t.Errorf("%d handoffs lost with be2, want at most %d", lost, shards*clients)
	}
	if r.Requests < 1000 {
		t.Errorf("only %d requests completed", r.Requests)
	}
}

// TestServerDown stops be2's upstream server while its agent stays up:
// the agent's health check reports it down, the switch answers 503 for
// be2's pool at once instead of handing connections to an agent that
// cannot serve them, and be2 serves again once its server is back.
func TestServerDown(t *testing.T) {
	needRoot(t, "ip", "curl")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	cfg := siteConfig(t, true, www)
	cfg.SwitchKeys = fastHealth
	s := startSiteConfig(t, cfg)
	status := func() string {
		out, _ := s.tb.Run("cli", "curl", "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", vipURL+"/hello")
		return out
	}
	if got := status(); got != "200" {
		t.Fatalf("be2 before: %s, want 200", got)
	}
	if err := s.Upstream.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	s.Upstream.Wait()
	detect := s.waitBackend("be2", false, 3*time.Second)
	before := s.backendState("be2")
	for range 3 {
		if got := status(); got != "503" {
			t.Errorf("be2's server down: %s, want 503 from the switch", got)
		}
	}
	if after := s.backendState("be2"); after.handoffsOK+after.handoffsFailed != before.handoffsOK+before.handoffsFailed || after.downs != 0 {
		t.Errorf("be2's server down: %+v after, %+v before; want no handoff and no down: its agent said so", after, before)
	}
	if got := s.curl(vipURL + "/static/small.txt"); got != smallBody {
		t.Errorf("be1 meanwhile: %q", got)
	}
	if err := s.StartUpstream(); err != nil {
		t.Fatal(err)
	}
	back := s.waitBackend("be2", true, 3*time.Second)
	if got := status(); got != "200" {
		t.Errorf("be2 after its server is back: %s, want 200", got)
	}
	logs, err := os.ReadFile(s.Agents[1].Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switch stopped using be2 %v after its server died, and again %v after it came back; agent log: %d 'server down', %d 'server up'",
		detect.Round(time.Millisecond), back.Round(time.Millisecond), bytes.Count(logs, []byte(`"server down`)), bytes.Count(logs, []byte(`"server up"`)))
}

// TestAgentUpgrade upgrades be1's handoffd in place (SIGHUP) during a
// 50 MiB download and a keep-alive session served by the old process. Both
// arrive byte-exact; the new process (a new PID in the PID file) takes the
// next connections; the switch treats it as an upgrade, not a failure (no
// back-end down, no 503); the old process exits once it has drained.
func TestAgentUpgrade(t *testing.T) {
	needRoot(t, "ip", "curl", "sha256sum")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	bigSum := randomFile(t, filepath.Join(www, "static", "50m.bin"), 50*mib)
	randomFile(t, filepath.Join(www, "static", "1m.bin"), mib)
	s := startSite(t, true, www)
	oldPID := s.Agents[0].Cmd.Process.Pid
	errorsBefore := s.switchErrors() // waitReady may have met a 503 before the agents were connected
	if pid := readPID(t, s.AgentPIDFile(0)); pid != oldPID {
		t.Fatalf("PID file %d, want %d", pid, oldPID)
	}

	// The download takes about 2.5 s, the session (50 x 1 MiB on one
	// connection) about as long; the upgrade comes 0.7 s in.
	big := s.download(vipURL+"/static/50m.bin", "20M")
	sess := s.download(strings.TrimSpace(strings.Repeat(vipURL+"/static/1m.bin ", 50)), "20M")
	time.Sleep(700 * time.Millisecond)
	if err := s.Agents[0].Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var newPID int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if newPID = readPID(t, s.AgentPIDFile(0)); newPID != oldPID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new handoffd in the PID file 5 s after SIGHUP")
		}
	}
	// New connections go to the new process.
	for range 4 {
		if got := s.curl(vipURL + "/static/small.txt"); got != smallBody {
			t.Fatalf("during the upgrade: %q, want %q", got, smallBody)
		}
	}
	select {
	case <-s.Agents[0].Done():
		t.Error("the old handoffd exited while it was still serving the download")
	default:
	}

	if got, err := big(); err != nil || got != bigSum {
		t.Errorf("download across the upgrade: %v, sha256 %q, want %s", err, got, bigSum)
	}
	if got, err := sess(); err != nil || got != repeatSum(t, filepath.Join(www, "static", "1m.bin"), 50) {
		t.Errorf("keep-alive session across the upgrade: %v, sha256 %q", err, got)
	}
	select {
	case <-s.Agents[0].Done():
		if err := s.Agents[0].Wait(); err != nil {
			t.Errorf("old handoffd: %v, want exit status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the old handoffd still runs 10 s after its connections ended")
	}

	handoffs := agentHandoffs(t, s.Agents[0].Log)
	be1 := s.backendState("be1")
	logs, err := os.ReadFile(s.SwitchLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("upgrade: PID %d -> %d; handoffs by process %v; switch: %d 'agent going away', be1 downs %d, usable %v",
		oldPID, newPID, handoffs, bytes.Count(logs, []byte("agent going away")), be1.downs, be1.usable)
	if handoffs[newPID] < 4 {
		t.Errorf("the new handoffd took %d handoffs, want the 4 made after the upgrade", handoffs[newPID])
	}
	if be1.downs != 0 || !be1.usable {
		t.Errorf("be1 after the upgrade: %+v; want no down and usable", be1)
	}
	if after := s.switchErrors(); after != errorsBefore {
		t.Errorf("the switch answered %d errors itself during the upgrade", after-errorsBefore)
	}
}

// switchErrors returns the number of HTTP errors the switch answered
// itself, over all shards.
func (s *site) switchErrors() (n uint64) {
	s.t.Helper()
	for _, v := range counterSum(s.shardCounters(), "http_errors") {
		n += uint64(v)
	}
	return n
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("PID file %s: %v", path, err)
	}
	return pid
}

// repeatSum returns the sha256 of n copies of the file at path.
func repeatSum(t *testing.T, path string, n int) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for range n {
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// agentHandoffs asks every handoffd writing to log (the old one and its
// successor share it) for its counters, and returns the handoffs by PID
// from the last "agent counters" line of each.
func agentHandoffs(t *testing.T, log string) map[int]uint64 {
	t.Helper()
	// The final counters of the old process are in the log already; the
	// new one logs them on SIGUSR1.
	pid := readPID(t, strings.TrimSuffix(log, ".log")+".pid")
	lines := func() int {
		b, _ := os.ReadFile(log)
		return bytes.Count(b, []byte(`"agent counters"`))
	}
	n := lines()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); lines() == n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the new handoffd logged no counters after SIGUSR1")
		}
	}
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			PID      int               `json:"pid"`
			Message  string            `json:"message"`
			Counters map[string]uint64 `json:"counters"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Message == "agent counters" {
			out[rec.PID] = rec.Counters["handoffs"]
		}
	}
	return out
}
