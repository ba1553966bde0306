package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	benchsite "webswitch/bench/site"
	"webswitch/bench/testbed"
)

const (
	mib        = 1 << 20
	smallBody  = "be1 static\n"
	helloBody  = "be2 web\n"
	oneWayMax  = 5 * mib // switch interface bytes allowed during a 100 MiB download
	keepAlives = 100
)

// TestOneWay is the handoff issue's acceptance list, run with the client's
// NIC offloads on (partial checksums and TSO super-frames reach the switch)
// and off.
func TestOneWay(t *testing.T) {
	needRoot(t, "ip", "ethtool", "curl", "ab", "wrk")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	sums := map[string]string{
		"10m.bin":  randomFile(t, filepath.Join(www, "static", "10m.bin"), 10*mib),
		"100m.bin": randomFile(t, filepath.Join(www, "static", "100m.bin"), 100*mib),
	}
	post := filepath.Join(t.TempDir(), "post.bin")
	postSum := randomFile(t, post, 8*mib)

	for _, offloads := range []bool{true, false} {
		t.Run(fmt.Sprintf("offloads=%v", offloads), func(t *testing.T) {
			s := startSite(t, offloads, www)
			lost, retrans := s.lostSegs(), s.retrans()
			last, lastRetrans := lost, retrans
			step := func(name string, f func(t *testing.T)) {
				t.Run(name, f)
				now, nowRetrans := s.lostSegs(), s.retrans()
				t.Logf("%s: client retransmissions +%d, of which not reported duplicate +%d", name, nowRetrans-lastRetrans, now-last)
				last, lastRetrans = now, nowRetrans
			}

			step("path rule picks the back-end", func(t *testing.T) {
				if got := s.curl(vipURL + "/static/small.txt"); got != smallBody {
					t.Errorf("/static/small.txt = %q, want be1's %q", got, smallBody)
				}
				if got := s.curl(vipURL + "/hello"); got != helloBody {
					t.Errorf("/hello = %q, want be2's %q", got, helloBody)
				}
			})

			step("downloads are byte-exact and bypass the switch", func(t *testing.T) {
				for _, name := range []string{"10m.bin", "100m.bin"} {
					before := s.switchBytes()
					got := s.curl("-o", "/dev/null", "-w", "%{http_code} %{size_download}", vipURL+"/static/"+name)
					crossed := s.switchBytes() - before
					sum := strings.Fields(s.run("sh", "-c", "curl -sS -m 60 "+vipURL+"/static/"+name+" | sha256sum"))[0]
					if sum != sums[name] {
						t.Errorf("%s: sha256 %s, want %s (%s)", name, sum, sums[name], got)
					}
					t.Logf("%s: %s; bytes through the switch's interface during the download: %d", name, got, crossed)
					if name == "100m.bin" && crossed >= oneWayMax {
						t.Errorf("100 MiB download moved %d bytes through the switch, want < %d", crossed, oneWayMax)
					}
				}
			})

			step("keep-alive: 100 requests on one connection", func(t *testing.T) {
				args := []string{"-w", "%{http_code} %{num_connects}\n"}
				for range keepAlives {
					args = append(args, vipURL+"/static/small.txt")
				}
				want := smallBody + "200 1\n" + strings.Repeat(smallBody+"200 0\n", keepAlives-1)
				if got := s.curl(args...); got != want {
					t.Errorf("keep-alive output differs:\n%.400s", got)
				}
			})

			step("half-close: request then FIN, on both back-ends", func(t *testing.T) {
				// The back-end must see the client's FIN to close the
				// HTTP/1.1 connection, or the client waits in vain. A FIN
				// behind the request is queued during the handoff; one in
				// the request's own segment (cork) is replayed by the switch.
				self, err := os.Executable()
				if err != nil {
					t.Fatal(err)
				}
				before := s.replayedFINs()
				for _, mode := range []string{"cork", "nocork"} {
					for path, body := range map[string]string{"/static/small.txt": smallBody, "/hello": helloBody} {
						out, err := s.tb.Command("cli", self, halfCloseArg, testbed.VIP+":80", path, mode).CombinedOutput()
						if err != nil || !strings.HasPrefix(string(out), "HTTP/1.1 200 ") || !strings.HasSuffix(string(out), "\r\n\r\n"+body) {
							t.Errorf("%s %s: %v\n%s", mode, path, err, out)
						}
					}
				}
				if got := s.replayedFINs() - before; got != 2 {
					t.Errorf("the switch replayed %d FINs, want 2 (the corked requests)", got)
				}
			})

			step("8 MiB POST through upstream mode", func(t *testing.T) {
				got := s.curl("--data-binary", "@"+post, vipURL+"/upload")
				if got != postSum {
					t.Errorf("server saw sha256 %q, want %q", got, postSum)
				}
			})

			step("both shards carry flows", func(t *testing.T) {
				s.requireAB("-n", "200", "-c", "8", vipURL+"/hello")
				c := s.shardCounters()
				for shard := 0; shard < 2; shard++ {
					flows, _ := c[shard]["flows"].(float64)
					t.Logf("shard %d: %v", shard, c[shard])
					if flows == 0 {
						t.Errorf("shard %d accepted no flow", shard)
					}
				}
			})

			step("short connections and wrk", func(t *testing.T) {
				s.requireAB("-n", "300", "-c", "1", vipURL+"/static/small.txt")
				s.requireAB("-n", "64", "-c", "64", vipURL+"/hello")
				out := s.run("wrk", "-t", "2", "-c", "16", "-d", "5s", vipURL+"/static/small.txt")
				t.Logf("wrk:\n%s", out)
				if strings.Contains(out, "Socket errors") || strings.Contains(out, "Non-2xx") {
					t.Errorf("wrk reported errors:\n%s", out)
				}
				if !regexp.MustCompile(`Requests/sec:\s+[1-9]`).MatchString(out) {
					t.Errorf("wrk made no requests:\n%s", out)
				}
			})

			if got := s.lostSegs() - lost; got != 0 {
				t.Errorf("the client retransmitted %d segments the back-ends had not received, on a lossless network", got)
			}
		})
	}
}

// requireAB runs ab and fails unless every request completed with a 2xx.
func (s *site) requireAB(args ...string) {
	s.t.Helper()
	out := s.run("ab", append([]string{"-q", "-s", "10"}, args...)...)
	n, _ := strconv.Atoi(args[1])
	complete := regexp.MustCompile(`Complete requests:\s+(\d+)`).FindStringSubmatch(out)
	failed := regexp.MustCompile(`Failed requests:\s+(\d+)`).FindStringSubmatch(out)
	if complete == nil || complete[1] != strconv.Itoa(n) || failed == nil || failed[1] != "0" || strings.Contains(out, "Non-2xx") {
		s.t.Errorf("ab %v:\n%s", args, out)
	}
}

// TestBadConfig checks that a bad configuration stops the switch with a
// message naming the file, the line and the key.
func TestBadConfig(t *testing.T) {
	bins := buildBinaries(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	writeFile(t, path, strings.Replace(benchsite.SwitchConfig(filepath.Join(dir, "secret"), 2, false, "", ""), `vip = "`+testbed.VIP+`"`, `vip = "not-an-ip"`, 1))
	out, err := exec.Command(filepath.Join(bins, "webswitch"), "-config", path).CombinedOutput()
	if err == nil {
		t.Fatalf("webswitch accepted a bad config:\n%s", out)
	}
	if !strings.Contains(string(out), path+":3") || !strings.Contains(string(out), "vip") {
		t.Errorf("error does not name file, line and key: %s", out)
	}
	_ = os.Remove(path)
}
