// Package site runs a whole webswitch installation in a testbed: the switch
// and two back-ends with their agents. The end-to-end tests, the demo and
// the bench harness share it.
package site

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"webswitch/bench/testbed"
)

// VIPURL is the base URL of the service.
const VIPURL = "http://" + testbed.VIP

// Config describes a site. be1 always serves Static1 with handoffd's static
// server; be2 serves Static2 the same way, or, when Upstream is set, runs
// that command (a server on 127.0.0.1:8080) behind handoffd's upstream mode.
// Requests under /static/ go to be1, all others to be2.
type Config struct {
	BinDir   string   // holds the webswitch and handoffd binaries
	Dir      string   // configuration files and logs
	Static1  string   // be1's document root
	Static2  string   // be2's document root (without Upstream)
	Upstream []string // be2's upstream server command
	Offloads bool     // client NIC offloads on
	Shards   int
}

// Site is a running installation.
type Site struct {
	TB        *testbed.Testbed
	Dir       string
	Switch    *testbed.Proc
	SwitchLog string
}

// Start brings up the testbed and the processes and waits until both pools
// answer through the VIP. On error everything it started is torn down.
func Start(cfg Config) (_ *Site, err error) {
	offloads := cfg.Offloads
	tb, err := testbed.Up(testbed.Config{ClientOffloads: &offloads})
	if err != nil {
		return nil, err
	}
	s := &Site{TB: tb, Dir: cfg.Dir}
	defer func() {
		if err != nil {
			tb.Down()
		}
	}()
	secret := filepath.Join(cfg.Dir, "secret")
	files := map[string]string{
		"secret":      "webswitch-" + tb.Prefix + "-0123456789abcdef\n",
		"switch.toml": SwitchConfig(secret, max(cfg.Shards, 1)),
		"be1.toml":    agentConfig(secret, 1, fmt.Sprintf("static_root = %q", cfg.Static1)),
	}
	if cfg.Upstream != nil {
		files["be2.toml"] = agentConfig(secret, 2, `upstream = "127.0.0.1:8080"`)
	} else {
		files["be2.toml"] = agentConfig(secret, 2, fmt.Sprintf("static_root = %q", cfg.Static2))
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(cfg.Dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	if cfg.Upstream != nil {
		if _, err := s.start("be2", "upstream", cfg.Upstream[0], cfg.Upstream[1:]...); err != nil {
			return nil, err
		}
	}
	handoffd := filepath.Join(cfg.BinDir, "handoffd")
	for _, be := range []string{"be1", "be2"} {
		if _, err := s.start(be, "handoffd-"+be, handoffd, "-config", filepath.Join(cfg.Dir, be+".toml")); err != nil {
			return nil, err
		}
	}
	s.SwitchLog = filepath.Join(cfg.Dir, "webswitch.log")
	if s.Switch, err = s.start("sw", "webswitch", filepath.Join(cfg.BinDir, "webswitch"), "-config", filepath.Join(cfg.Dir, "switch.toml")); err != nil {
		return nil, err
	}
	return s, s.waitReady(cfg.Upstream != nil)
}

func (s *Site) start(host, name, bin string, args ...string) (*testbed.Proc, error) {
	return s.TB.Start(host, filepath.Join(s.Dir, name+".log"), bin, args...)
}

// waitReady waits until a request to each pool succeeds.
func (s *Site) waitReady(upstream bool) error {
	deadline := time.Now().Add(15 * time.Second)
	paths := []string{"/static/", "/"}
	if upstream {
		paths[1] = "/hello"
	}
	for _, path := range paths {
		for {
			out, err := s.TB.Run("cli", "curl", "-sS", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", VIPURL+path)
			if err == nil && out == "200" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("switch not ready: GET %s: %s %v", path, out, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// Logs returns the tail of every process log, for a failure report.
func (s *Site) Logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(s.Dir, "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if len(data) > 8000 {
			data = data[len(data)-8000:]
		}
		fmt.Fprintf(&b, "=== %s (tail)\n%s\n", filepath.Base(f), data)
	}
	return b.String()
}

// Down stops everything and deletes the testbed.
func (s *Site) Down() error { return s.TB.Down() }

// SwitchConfig returns the switch's configuration for the testbed's two
// back-ends, with the given secret file and number of shards.
func SwitchConfig(secret string, shards int) string {
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
`, testbed.VIP, shards, secret,
		testbed.BackendIP(1), testbed.BackendIP(1), testbed.BackendIP(2), testbed.BackendIP(2))
}

func agentConfig(secret string, i int, serve string) string {
	return fmt.Sprintf("[agent]\nlisten = \"%s:7070\"\nvip = %q\nsecret_file = %q\n[serve]\n%s\n",
		testbed.BackendIP(i), testbed.VIP, secret, serve)
}
