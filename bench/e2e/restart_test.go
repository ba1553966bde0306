package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// crashGap is how long the switch stays dead in the crash tests.
const crashGap = 500 * time.Millisecond

// crash kills the switch with SIGKILL, waits crashGap and starts it again.
// It returns once the new process answers through the VIP (StartSwitch).
func (s *site) crash() {
	s.t.Helper()
	if err := s.KillSwitch(); err != nil {
		s.t.Fatal(err)
	}
	time.Sleep(crashGap)
	if err := s.StartSwitch(); err != nil {
		s.t.Fatal(err)
	}
}

// recovered sums the shards' recovered flows, by how.
func (s *site) recovered() map[string]uint64 {
	n := map[string]uint64{}
	for _, c := range s.shardCounters() {
		r, _ := c["recovered"].(map[string]any)
		for how, v := range r {
			f, _ := v.(float64)
			n[how] += uint64(f)
		}
	}
	return n
}

// firstRecovered returns the earliest "first flow recovered" line's time
// since its shard started, from the current switch's log (0: none).
func (s *site) firstRecovered() time.Duration {
	s.t.Helper()
	data, err := os.ReadFile(s.SwitchLog)
	if err != nil {
		s.t.Fatal(err)
	}
	var first time.Duration
	for _, line := range bytes.Split(data, []byte("\n")) {
		var e struct {
			Message    string  `json:"message"`
			SinceStart float64 `json:"since_start"` // zerolog's duration: milliseconds
		}
		if json.Unmarshal(line, &e) != nil || e.Message != "first flow recovered from the agents" {
			continue
		}
		if d := time.Duration(e.SinceStart * float64(time.Millisecond)); first == 0 || d < first {
			first = d
		}
	}
	return first
}

// TestCrashRestart: the switch is killed (SIGKILL) during a rate-limited
// 100 MiB download and started again 0.5 s later. The flow is recovered
// from be1's agent and the download is byte-exact.
func TestCrashRestart(t *testing.T) {
	needRoot(t, "ip", "curl", "sha256sum")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	bigSum := randomFile(t, filepath.Join(www, "static", "100m.bin"), 100*mib)
	s := startSite(t, true, www)

	big := s.download(vipURL+"/static/100m.bin", "25M")
	time.Sleep(time.Second)
	retrans := s.retrans()
	killed := time.Now()
	s.crash()
	ready := time.Since(killed)
	if sum, err := big(); err != nil || sum != bigSum {
		t.Fatalf("100 MiB download across the crash: %v, sha256 %q, want %s", err, sum, bigSum)
	}
	rec := s.recovered()
	if rec["lookup"] < 1 {
		t.Errorf("recovered %v, want the download's flow by lookup", rec)
	}
	t.Logf("killed, started 0.5 s later, answering through the VIP %.2f s after the kill; first flow recovered %v after the new process's shards started; download done %.1f s after the kill; client retransmissions %d; recovered %v",
		ready.Seconds(), s.firstRecovered().Round(time.Millisecond), time.Since(killed).Seconds(), s.retrans()-retrans, rec)
}

// keepAliveScript sends a request every 100 ms on one connection and
// prints the number of right answers and of local ports used.
const keepAliveScript = `
import http.client, sys, time
n, want = int(sys.argv[2]), sys.argv[3].encode()
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=20)
ok, ports, errors = 0, set(), []
for i in range(n):
    try:
        c.request("GET", "/static/small.txt")
        r = c.getresponse()
        body = r.read()
        ports.add(c.sock.getsockname()[1])
        if r.status == 200 and body == want:
            ok += 1
        else:
            errors.append("%d: status %d, %d bytes" % (i, r.status, len(body)))
    except Exception as e:
        errors.append("%d: %r" % (i, e))
        c.close()
    time.sleep(0.1)
print(ok, len(ports), "; ".join(errors[:5]))
`

// TestKeepAliveAcrossCrash: a client sends a request every 100 ms on one
// keep-alive connection while the switch is killed and started again:
// every request is answered, right, on the same connection.
func TestKeepAliveAcrossCrash(t *testing.T) {
	needRoot(t, "ip", "python3")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	s := startSite(t, true, www)
	const requests = 40
	var out bytes.Buffer
	cli := s.tb.Command("cli", "python3", "-c", keepAliveScript, "198.18.0.100", fmt.Sprint(requests), smallBody)
	cli.Stdout, cli.Stderr = &out, &out
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	retrans := s.retrans()
	s.crash()
	if err := cli.Wait(); err != nil {
		t.Fatalf("client: %v: %s", err, out.String())
	}
	var ok, ports int
	if _, err := fmt.Sscanf(out.String(), "%d %d", &ok, &ports); err != nil {
		t.Fatalf("client output %q: %v", out.String(), err)
	}
	if ok != requests || ports != 1 {
		t.Errorf("%d of %d requests answered right on %d connections, want all on 1 (%s)", ok, requests, ports, out.String())
	}
	t.Logf("%d of %d requests answered on %d connection across the crash; client retransmissions %d; recovered %v",
		ok, requests, ports, s.retrans()-retrans, s.recovered())
}

// TestPendingHandoff: the switch dies while a HANDOFF waits for its answer
// (be1's agent holds it: the test hook). The agent's socket exists (its
// window probe acknowledged the request); once released, the agent cannot
// answer the dead switch and delivers the connection anyway; the client
// gets its answer, and its last segments reach be1 through the new
// switch, which recovers the flow.
func TestPendingHandoff(t *testing.T) {
	needRoot(t, "ip", "curl")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	hold := filepath.Join(t.TempDir(), "hold")
	cfg := siteConfig(t, true, www)
	cfg.ReadyPaths = []string{"/hello"} // be2: the new switch's readiness does not wait for be1's held answers
	s := startSiteConfig(t, cfg)
	// be1's agent again, with the hook.
	if err := s.Agents[0].Stop(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HANDOFFD_TEST_HOLD_ANSWER", hold)
	if err := s.StartAgent(0); err != nil {
		t.Fatal(err)
	}
	s.waitBackend("be1", true, 10*time.Second)
	writeFile(t, hold, "")

	var got bytes.Buffer
	cli := s.tb.Command("cli", "curl", "-sS", "-m", "30", vipURL+"/static/small.txt")
	cli.Stdout, cli.Stderr = &got, &got
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the HANDOFF is at be1, held
	s.crash()
	released := time.Now()
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	if err := cli.Wait(); err != nil || got.String() != smallBody {
		t.Fatalf("the pending request: %v, %q; want %q", err, got.String(), smallBody)
	}
	log, _ := os.ReadFile(s.Agents[0].Log)
	if !bytes.Contains(log, []byte("OK not written; connection delivered all the same")) {
		t.Errorf("be1's agent did not log a delivery without an answer")
	}
	t.Logf("answered %.2f s after the hold was released (after the restart); recovered %v", time.Since(released).Seconds(), s.recovered())
}

// TestStopStart is what `systemctl restart webswitch` does: SIGTERM (a
// drain, here with drain_timeout 1 s), the process exits with a download
// still under way, and a new one starts. The new process recovers the
// download's flow: byte-exact.
func TestStopStart(t *testing.T) {
	needRoot(t, "ip", "curl", "sha256sum")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	bigSum := randomFile(t, filepath.Join(www, "static", "100m.bin"), 100*mib)
	cfg := siteConfig(t, true, www)
	cfg.SwitchKeys = "drain_timeout = \"1s\"\n"
	s := startSiteConfig(t, cfg)

	big := s.download(vipURL+"/static/100m.bin", "25M")
	time.Sleep(time.Second)
	if err := s.Switch.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.Switch.Wait(); err != nil {
		t.Fatalf("the switch exited with %v after its drain, want status 0", err)
	}
	if err := s.StartSwitch(); err != nil {
		t.Fatal(err)
	}
	if sum, err := big(); err != nil || sum != bigSum {
		t.Fatalf("100 MiB download across the stop and start: %v, sha256 %q, want %s", err, sum, bigSum)
	}
	if rec := s.recovered(); rec["lookup"] < 1 {
		t.Errorf("recovered %v, want the download's flow by lookup", rec)
	}
}
