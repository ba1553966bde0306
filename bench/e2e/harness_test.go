// Package e2e holds the end-to-end tests: the real webswitch, handoffd and
// clients (curl, ab, wrk) in a namespace testbed. They need root and skip
// without it.
package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	benchsite "webswitch/bench/site"
	"webswitch/bench/testbed"
)

// httpdArg makes the test binary an HTTP server instead of running tests: the
// back-end behind handoffd's upstream mode. GET /hello answers "be2 web",
// any POST answers the hex SHA-256 of its body.
const httpdArg = "e2e-httpd"

// halfCloseArg makes the test binary a client that sends one HTTP/1.1
// request, shuts down its sending side at once, and prints what it reads
// until the server closes (at most 10 s). With "cork" the request and the
// FIN leave in one segment (TCP_CORK), else in two.
const halfCloseArg = "e2e-halfclose"

func TestMain(m *testing.M) {
	switch {
	case len(os.Args) == 3 && os.Args[1] == httpdArg:
		runHTTPD(os.Args[2])
		return
	case len(os.Args) == 5 && os.Args[1] == halfCloseArg:
		if err := halfClose(os.Args[2], os.Args[3], os.Args[4] == "cork"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

func halfClose(addr, path string, cork bool) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if cork {
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1)
		}); err != nil {
			return err
		}
		if serr != nil {
			return serr
		}
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	_, err = io.Copy(os.Stdout, c)
	return err
}

func runHTTPD(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "be2 web\n") })
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		if _, err := io.Copy(h, r.Body); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
	})
	fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, mux))
	os.Exit(1)
}

// needRoot skips a test that needs root, and checks the tools it runs.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("end-to-end test: needs root to create network namespaces (CI runs it as root)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs it): %v", tool, err)
		}
	}
}

// binaries are built once per test process.
var binDir string

func buildBinaries(t *testing.T) string {
	t.Helper()
	if binDir != "" {
		return binDir
	}
	dir, err := os.MkdirTemp("", "webswitch-e2e-bin")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "build", "-o", dir, "webswitch/cmd/webswitch", "webswitch/cmd/handoffd", "webswitch/cmd/httpagent").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	binDir = dir
	return dir
}

// site is a running installation (bench/site) with test helpers.
type site struct {
	*benchsite.Site
	t  *testing.T
	tb *testbed.Testbed
}

const vipURL = benchsite.VIPURL

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// randomFile writes n random bytes to path and returns their SHA-256.
func randomFile(t *testing.T, path string, n int64) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// startSite brings up the switch with be1 serving www (static) and be2 in
// upstream mode in front of this test binary's HTTP server.
func startSite(t *testing.T, offloads bool, www string) *site {
	t.Helper()
	return startSiteConfig(t, siteConfig(t, offloads, www))
}

// siteConfig is startSite's configuration, for tests that change it.
func siteConfig(t *testing.T, offloads bool, www string) benchsite.Config {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return benchsite.Config{
		Static1: www, Upstream: []string{self, httpdArg, "127.0.0.1:8080"},
		Offloads: offloads, Shards: 2,
	}
}

// startSiteConfig brings up a site (the directory is filled in, and the
// binaries unless cfg has its own) and tears it down at the end of the
// test, logging the processes' logs if it failed.
func startSiteConfig(t *testing.T, cfg benchsite.Config) *site {
	t.Helper()
	if cfg.BinDir == "" {
		cfg.BinDir = buildBinaries(t)
	}
	cfg.Dir = t.TempDir()
	s, err := benchsite.Start(cfg)
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
	return &site{Site: s, t: t, tb: s.TB}
}

// download starts curl in the client namespace on urls (space-separated,
// through one connection) at rate (curl's --limit-rate, "20M"), piped
// into sha256sum; wait returns the sum of all the bodies, and the error
// of the pipe (curl's, within its 60 s limit).
func (s *site) download(urls, rate string) (wait func() (string, error)) {
	s.t.Helper()
	var out bytes.Buffer
	cmd := s.tb.Command("cli", "bash", "-o", "pipefail", "-c", "curl -sS -m 60 --limit-rate "+rate+" "+urls+" | sha256sum")
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	return func() (string, error) {
		err := cmd.Wait()
		if f := strings.Fields(out.String()); len(f) > 0 {
			return f[0], err
		}
		return "", err
	}
}

// curl runs curl in the client namespace and returns its standard output.
func (s *site) curl(args ...string) string {
	s.t.Helper()
	out, err := s.tb.Command("cli", "curl", append([]string{"-sS", "-m", "60"}, args...)...).Output()
	if err != nil {
		s.t.Fatalf("curl %v: %v", args, err)
	}
	return string(out)
}

func (s *site) run(name string, args ...string) string {
	s.t.Helper()
	out, err := s.tb.Run("cli", name, args...)
	if err != nil {
		s.t.Fatalf("%s %v: %v", name, args, err)
	}
	return out
}

func (s *site) retrans() uint64 {
	s.t.Helper()
	m, err := s.tb.SNMP("cli")
	if err != nil {
		s.t.Fatal(err)
	}
	if os.Getenv("WS_E2E_NSTAT") != "" {
		out, _ := s.tb.Run("cli", "nstat", "-a")
		s.t.Logf("client nstat:\n%s", out)
		out, _ = s.tb.Run("be2", "nstat", "-a")
		s.t.Logf("be2 nstat:\n%s", out)
	}
	return m["Tcp.RetransSegs"]
}

// lostSegs counts the client's retransmissions that were needed: all of
// them (Tcp.RetransSegs) but those the receiver reported as duplicates
// (TcpExt.TCPDSACKRecv), which a loaded machine causes by delaying ACKs
// past a tail loss probe or a timeout, without any frame lost.
func (s *site) lostSegs() int64 {
	s.t.Helper()
	m, err := s.tb.SNMP("cli")
	if err != nil {
		s.t.Fatal(err)
	}
	return int64(m["Tcp.RetransSegs"]) - int64(m["TcpExt.TCPDSACKRecv"])
}

func (s *site) switchBytes() uint64 {
	s.t.Helper()
	rx, tx, err := s.tb.IfBytes("sw", "eth0")
	if err != nil {
		s.t.Fatal(err)
	}
	return rx + tx
}

// shardCounters asks the switch for its counters (bench/site) and fails
// the test if it cannot.
func (s *site) shardCounters() map[int]map[string]any {
	s.t.Helper()
	c, err := s.ShardCounters()
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// replayedFINs sums the shards' fins_replayed counters.
func (s *site) replayedFINs() uint64 {
	return uint64(counterSum(s.shardCounters(), "fins_replayed")[""])
}

// counterSum sums the shards' counter name: a number (under the key ""),
// or a map of numbers by key (drops, http_errors).
func counterSum(c map[int]map[string]any, name string) map[string]float64 {
	sum := map[string]float64{}
	for _, shard := range c {
		switch v := shard[name].(type) {
		case float64:
			sum[""] += v
		case map[string]any:
			for k, n := range v {
				f, _ := n.(float64)
				sum[k] += f
			}
		}
	}
	return sum
}
