// Package e2e holds the end-to-end tests: the real webswitch, handoffd and
// clients (curl, ab, wrk) in a namespace testbed. They need root and skip
// without it.
package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"webswitch/bench/testbed"
)

// httpdArg makes the test binary an HTTP server instead of running tests: the
// back-end behind handoffd's upstream mode. GET /hello answers "be2 web",
// any POST answers the hex SHA-256 of its body.
const httpdArg = "e2e-httpd"

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == httpdArg {
		runHTTPD(os.Args[2])
		return
	}
	os.Exit(m.Run())
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
	out, err := exec.Command("go", "build", "-o", dir, "webswitch/cmd/webswitch", "webswitch/cmd/handoffd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	binDir = dir
	return dir
}

// site is a switch with two back-ends: be1 serves files with handoffd's
// static server, be2 is handoffd in upstream mode in front of the test's
// own HTTP server.
type site struct {
	t     *testing.T
	tb    *testbed.Testbed
	dir   string
	sw    *testbed.Proc
	swLog string
}

const vipURL = "http://" + testbed.VIP

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

func switchConfig(dir string, shards int) string {
	return fmt.Sprintf(`[switch]
interface = "eth0"
vip = %q
ports = [80]
shards = %d
[control]
secret_file = %q
[[backend]]
name = "be1"
address = %q
agent = "%s:7070"
[[backend]]
name = "be2"
address = %q
agent = "%s:7070"
[[pool]]
name = "static"
backends = ["be1"]
[[pool]]
name = "web"
backends = ["be2"]
[[rule]]
path_prefix = "/static/"
pool = "static"
[[rule]]
pool = "web"
`, testbed.VIP, shards, filepath.Join(dir, "secret"),
		testbed.BackendIP(1), testbed.BackendIP(1), testbed.BackendIP(2), testbed.BackendIP(2))
}

func agentConfig(dir string, i int, serve string) string {
	return fmt.Sprintf("[agent]\nlisten = \"%s:7070\"\nvip = %q\nsecret_file = %q\n[serve]\n%s\n",
		testbed.BackendIP(i), testbed.VIP, filepath.Join(dir, "secret"), serve)
}

// startSite brings up the testbed and the processes; www is be1's static root.
func startSite(t *testing.T, offloads bool, www string) *site {
	t.Helper()
	bins := buildBinaries(t)
	tb, err := testbed.Up(testbed.Config{ClientOffloads: &offloads})
	if err != nil {
		t.Fatal(err)
	}
	s := &site{t: t, tb: tb, dir: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs()
		}
		if err := tb.Down(); err != nil {
			t.Errorf("testbed down: %v", err)
		}
	})
	writeFile(t, filepath.Join(s.dir, "secret"), "e2e-secret-"+tb.Prefix+"-0123456789abcdef\n")
	writeFile(t, filepath.Join(s.dir, "switch.toml"), switchConfig(s.dir, 2))
	writeFile(t, filepath.Join(s.dir, "be1.toml"), agentConfig(s.dir, 1, fmt.Sprintf("static_root = %q", www)))
	writeFile(t, filepath.Join(s.dir, "be2.toml"), agentConfig(s.dir, 2, `upstream = "127.0.0.1:8080"`))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s.start("be2", "httpd", self, httpdArg, "127.0.0.1:8080")
	s.start("be1", "handoffd-be1", filepath.Join(bins, "handoffd"), "-config", filepath.Join(s.dir, "be1.toml"))
	s.start("be2", "handoffd-be2", filepath.Join(bins, "handoffd"), "-config", filepath.Join(s.dir, "be2.toml"))
	s.swLog = filepath.Join(s.dir, "webswitch.log")
	s.sw = s.start("sw", "webswitch", filepath.Join(bins, "webswitch"), "-config", filepath.Join(s.dir, "switch.toml"))
	s.waitReady()
	return s
}

func (s *site) start(host, name, bin string, args ...string) *testbed.Proc {
	s.t.Helper()
	p, err := s.tb.Start(host, filepath.Join(s.dir, name+".log"), bin, args...)
	if err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	return p
}

// waitReady waits until both pools answer through the VIP.
func (s *site) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, path := range []string{"/static/small.txt", "/hello"} {
		for {
			out, err := s.tb.Run("cli", "curl", "-sS", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", vipURL+path)
			if err == nil && out == "200" {
				break
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("switch not ready: GET %s: %s %v", path, out, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func (s *site) dumpLogs() {
	files, _ := filepath.Glob(filepath.Join(s.dir, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		s.t.Logf("=== %s (tail)\n%s", filepath.Base(f), b)
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

func (s *site) switchBytes() uint64 {
	s.t.Helper()
	rx, tx, err := s.tb.IfBytes("sw", "eth0")
	if err != nil {
		s.t.Fatal(err)
	}
	return rx + tx
}

// shardCounters asks the switch to log its counters (SIGUSR1) and returns
// the latest line of each shard.
func (s *site) shardCounters() map[int]map[string]any {
	s.t.Helper()
	before := countLines(s.swLog, "shard counters")
	if err := s.sw.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for countLines(s.swLog, "shard counters") < before+2 {
		if time.Now().After(deadline) {
			s.t.Fatal("no counters logged after SIGUSR1")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := os.ReadFile(s.swLog)
	if err != nil {
		s.t.Fatal(err)
	}
	got := map[int]map[string]any{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		var rec struct {
			Message  string         `json:"message"`
			Counters map[string]any `json:"counters"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.Message != "shard counters" {
			continue
		}
		got[int(rec.Counters["shard"].(float64))] = rec.Counters
	}
	return got
}

func countLines(path, substr string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), substr)
}
