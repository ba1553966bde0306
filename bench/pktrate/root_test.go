package pktrate

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestRun replays ACKs of a few spliced flows at a modest rate through a
// one-shard switch in a testbed of its own.
func TestRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("packet-rate bench: needs root to create network namespaces (CI runs it as root)")
	}
	bin := t.TempDir()
	out, err := exec.Command("go", "build", "-o", bin, "webswitch/cmd/webswitch", "webswitch/cmd/handoffd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s, err := StartSite(bin, t.TempDir(), "wsC"+randomHex(3), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.Logs())
		}
		if err := s.Down(); err != nil {
			t.Errorf("testbed down: %v", err)
		}
	})

	// A rate the 2-CPU test machine sustains: the assertions are about
	// correctness, not speed.
	res, err := Run(s, Config{Flows: 50, Duration: time.Second, Rate: 20000, Batch: 32})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("result:\n%s", js)

	if res.Flows != 50 || res.Sent == 0 {
		t.Fatalf("flows %d, sent %d: want 50 flows and frames sent", res.Flows, res.Sent)
	}
	if len(res.Shards) != 1 || res.Shards[0].Shard != 0 {
		t.Fatalf("shards %+v: want exactly shard 0", res.Shards)
	}
	// Run fails when a shard's log lacks ring_drops, so its value here was
	// reported by the switch.
	sh := res.Shards[0]
	if sh.Forwarded < res.Sent*9/10 {
		t.Errorf("the switch forwarded %d of %d frames sent, less than 90%%", sh.Forwarded, res.Sent)
	}
	if sh.FramesIn < sh.Forwarded {
		t.Errorf("frames in %d < forwarded %d", sh.FramesIn, sh.Forwarded)
	}
	if res.BackendRxFrames < sh.Forwarded*9/10 {
		t.Errorf("the back-ends received %d frames of the %d forwarded", res.BackendRxFrames, sh.Forwarded)
	}
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
