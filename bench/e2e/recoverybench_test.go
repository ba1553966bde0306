package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"

	"webswitch/bench/recovery"
	benchsite "webswitch/bench/site"
)

// recoveryFlows is how many connections TestRecoveryBench has the switch
// recover: a few LOOKUP batches per shard and agent, in about a second.
const recoveryFlows = 2000

// TestRecoveryBench runs the flow recovery bench (bench/recovery, "wsbench
// recovery") small: the switch must recover every one of recoveryFlows
// spliced connections it never saw, from the agents (LOOKUP), each from
// exactly one owner and with every LOOKUP answered; then, killed with
// SIGKILL during a download and started again, it must recover that flow
// and the download complete intact. Speed is the bench's business.
func TestRecoveryBench(t *testing.T) {
	needRoot(t, "ip", "curl")
	wsbench := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", wsbench, "webswitch/cmd/wsbench").CombinedOutput(); err != nil {
		t.Fatalf("go build wsbench: %v\n%s", err, out)
	}
	www := t.TempDir()
	if err := benchsite.WriteFiles(www, recovery.Files()); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(www, "index.html"), smallBody)
	cfg := recovery.Config{
		Flows:  recoveryFlows,
		Holder: []string{filepath.Join(wsbench, "wsbench"), "recovery-hold"},
		// Below what the switch recovers per second here (about 45k), so
		// that most connections are recovered in the first pass.
		SendRate: 20000,
	}
	scfg := recovery.SiteConfig(cfg)
	scfg.Static1, scfg.Static2 = www, www
	s := startSiteConfig(t, scfg)

	res, err := recovery.Run(s.Site, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d passes, %d recovered in %.3f s; switch: %+v", len(res.Passes), res.Recovered, res.TotalSecs, res.Switch)
	c := res.Switch
	if c.Lookup == 0 && c.Unanswered > 0 {
		t.Fatalf("no connection recovered, %d LOOKUPs unanswered: do the agents answer LOOKUP (handoffd with the sock_diag lookup)?", c.Unanswered)
	}
	if c.Lookup != recoveryFlows || res.Unrecovered != 0 {
		t.Errorf("recovered %d by lookup, %d connections never got their ACK, of %d (%d ACKs taken for a handshake by a valid cookie by chance)",
			c.Lookup, res.Unrecovered, recoveryFlows, c.Connections)
	}
	if c.Conflicts != 0 || c.Unanswered != 0 || c.Cookie != 0 {
		t.Errorf("conflicts %d, LOOKUPs unanswered %d, recovered by cookie %d: want none", c.Conflicts, c.Unanswered, c.Cookie)
	}
	if c.Forwarded < recoveryFlows || c.Latency.Count() < recoveryFlows {
		t.Errorf("forwarded %d frames, decided %d connections: want at least %d of each", c.Forwarded, c.Latency.Count(), recoveryFlows)
	}

	rs, err := recovery.Restart(s.Site)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restart: /metrics after %.3f s, first segment after %.3f s, first recovered after %.3f s; download %s",
		rs.AdminSecs, rs.FrameSecs, rs.FirstSecs, rs.Download)
	if rs.Switch.Lookup < 1 || rs.Switch.Conflicts != 0 {
		t.Errorf("the restarted switch recovered %d flows by lookup, %d conflicts: want the download's, no conflict", rs.Switch.Lookup, rs.Switch.Conflicts)
	}
	if !rs.DownloadOK {
		t.Errorf("download across the restart: %s", rs.Download)
	}
}
