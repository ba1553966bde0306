package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	benchsite "webswitch/bench/site"
	"webswitch/bench/testbed"
)

const (
	lossPercent   = 5
	lossDownloads = 200 // of 1 MiB, through the switch and, for comparison, direct
	lossSessions  = 20  // keep-alive sessions through the switch ...
	lossRequests  = 50  // ... of this many requests each
	lossWorkers   = 8   // clients downloading at once
)

// TestLoss drops 5% of the TCP frames crossing the LAN's bridge, in both
// directions and every kind (handshakes, requests, handoffs on the control
// connections, responses, ACKs), with segmentation offloads off so that a
// drop is one packet, and a client frame the switch forwards dropped at
// most once (see below). Every download and every keep-alive response must
// arrive byte-exact; the download times through the switch and direct to
// the back-ends are logged side by side.
func TestLoss(t *testing.T) {
	needRoot(t, "ip", "curl", "nft", "ethtool", "sha256sum")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "small.txt"), smallBody)
	sum := randomFile(t, filepath.Join(www, "1m.bin"), mib)
	s := startSiteConfig(t, benchsite.Config{
		Static1: www, Static2: www, Balanced: true, DirectPort: 8080, Offloads: false, Shards: 2,
	})
	for _, host := range s.tb.Hosts() {
		if host == "lan" {
			continue
		}
		// Whole packets only: a dropped TSO super-frame would be a burst of 40.
		if out, err := s.tb.Run(host, "ethtool", "-K", "eth0", "tso", "off", "gso", "off", "gro", "off"); err != nil {
			t.Fatalf("%s: ethtool: %v: %s", host, err, out)
		}
	}
	// A client frame of a spliced flow crosses the bridge twice (client to
	// switch, switch to back-end) where a direct one crosses it once: the
	// second crossing is exempt, so that both paths lose 5% of the
	// client's frames and the comparison is of the two ways of serving,
	// not of the number of hops (dropped twice, the switch path lost about
	// twice the ACKs, and its tail was that many more back-end
	// retransmission timeouts). Everything else, the switch's own frames
	// and the control connections included, loses 5%.
	mac, err := s.tb.Run("sw", "cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatal(err)
	}
	// The back-ends keep no TCP metrics, as a server whose clients are all
	// new: a re-created socket gets no cached RTT, and its first
	// retransmission timeout comes from the RTT sample the agent takes
	// (see handoff/repair_linux.go, step 9) instead of 3 s.
	for _, be := range []string{"be1", "be2"} {
		if out, err := s.tb.Run(be, "sysctl", "-w", "net.ipv4.tcp_no_metrics_save=1"); err != nil {
			t.Fatalf("%s: %v: %s", be, err, out)
		}
	}
	rules := fmt.Sprintf(`table bridge loss {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ether saddr %s ip saddr %s accept
		meta l4proto tcp numgen random mod 100 < %d counter drop
	}
}
`, strings.TrimSpace(mac), testbed.ClientIP, lossPercent)
	cmd := exec.Command("ip", "netns", "exec", s.tb.NS("lan"), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}

	retrans := s.retrans()
	direct := []string{
		"http://" + testbed.BackendIP(1) + ":8080/1m.bin",
		"http://" + testbed.BackendIP(2) + ":8080/1m.bin",
	}
	for _, run := range []struct {
		name string
		urls []string
	}{{"webswitch", []string{vipURL + "/1m.bin"}}, {"direct", direct}} {
		times := s.downloads(t, run.urls, sum)
		slices.Sort(times)
		t.Logf("%s: %d downloads of 1 MiB at %d%% loss: p50 %.0f ms, p99 %.0f ms, max %.0f ms",
			run.name, len(times), lossPercent, ms(times[len(times)/2]), ms(times[len(times)*99/100]), ms(times[len(times)-1]))
	}

	var args []string
	for range lossRequests {
		args = append(args, vipURL+"/small.txt")
	}
	want := strings.Repeat(smallBody, lossRequests)
	for i := range lossSessions {
		if got := s.curl(args...); got != want {
			t.Fatalf("keep-alive session %d at %d%% loss: %d bytes, want %d", i, lossPercent, len(got), len(want))
		}
	}
	out, _ := exec.Command("ip", "netns", "exec", s.tb.NS("lan"), "nft", "list", "table", "bridge", "loss").CombinedOutput()
	t.Logf("%d keep-alive sessions of %d requests byte-exact; client retransmitted %d segments; the bridge's drop rule: %s",
		lossSessions, lossRequests, s.retrans()-retrans, strings.TrimSpace(lineWith(string(out), "counter")))
}

// downloads fetches lossDownloads files from urls (in turn), lossWorkers at
// a time, checks each one's sha256 and returns their times.
func (s *site) downloads(t *testing.T, urls []string, sum string) []time.Duration {
	t.Helper()
	script := `for i in $(seq %d); do
  f=$(mktemp) && t=$(curl -sS -m 60 -o "$f" -w '%%{time_total}' "$1") && echo "$t $(sha256sum < "$f" | cut -d' ' -f1)"; rm -f "$f"
done`
	per := lossDownloads / lossWorkers
	outs := make([]string, lossWorkers)
	errs := make([]error, lossWorkers)
	done := make(chan int)
	for w := range lossWorkers {
		go func() {
			outs[w], errs[w] = s.tb.Run("cli", "sh", "-c", fmt.Sprintf(script, per), "sh", urls[w%len(urls)])
			done <- w
		}()
	}
	for range lossWorkers {
		<-done
	}
	var times []time.Duration
	for w := range lossWorkers {
		if errs[w] != nil {
			t.Fatalf("downloads: %v\n%s", errs[w], outs[w])
		}
		for _, line := range strings.Split(strings.TrimSpace(outs[w]), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 || f[1] != sum {
				t.Fatalf("download %q: want time and sha256 %s", line, sum)
			}
			sec, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				t.Fatal(err)
			}
			times = append(times, time.Duration(sec*float64(time.Second)))
		}
	}
	if len(times) != lossDownloads {
		t.Fatalf("%d downloads, want %d", len(times), lossDownloads)
	}
	return times
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func lineWith(text, substr string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}
