package dist

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"webswitch/conf"
)

// makeInstall runs "make install" in the repository with the variables
// given, building the binaries into bin (not the repository's bin/).
func makeInstall(t *testing.T, bin string, vars ...string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", append([]string{"-C", root, "install", "BIN=" + bin}, vars...)...)
	// Not the job server of a make that runs this test.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// unit is the [Service] section of a systemd unit file: every value of
// each key, in order.
type unit map[string][]string

// readUnit parses the [Service] section of the unit file at path.
func readUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := make(unit)
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[':
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			u[k] = append(u[k], v)
		}
	}
	return u
}

// one returns the single value of key, failing the test if there is not
// exactly one.
func (u unit) one(t *testing.T, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("%s: %d values %q, want one", key, len(u[key]), u[key])
	}
	return u[key][0]
}

// checkFile fails the test unless path is a regular file with the mode and,
// if want is not nil, the content.
func checkFile(t *testing.T, path string, mode os.FileMode, want []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want a regular file with %v", path, fi.Mode(), mode)
	}
	if want == nil {
		return
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s: not the expected content (err %v)", path, err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every command")
	}
	for _, cmd := range []string{"make", "go"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Skipf("needs the %s command", cmd)
		}
	}
	dest, bin := t.TempDir(), t.TempDir()
	switchExample := readFile(t, "../conf/testdata/switch.toml")
	agentExample := readFile(t, "../conf/testdata/agent.toml")
	confDir := filepath.Join(dest, "etc/webswitch")
	unitDir := filepath.Join(dest, "lib/systemd/system")

	makeInstall(t, bin, "DESTDIR="+dest)
	for _, name := range []string{"webswitch", "handoffd", "wsbench"} {
		checkFile(t, filepath.Join(dest, "usr/local/bin", name), 0o755, readFile(t, filepath.Join(bin, name)))
	}
	checkFile(t, filepath.Join(confDir, "switch.toml"), 0o644, switchExample)
	checkFile(t, filepath.Join(confDir, "agent.toml"), 0o644, agentExample)
	checkFile(t, filepath.Join(unitDir, "webswitch.service"), 0o644, nil)
	checkFile(t, filepath.Join(unitDir, "handoffd.service"), 0o644, nil)
	checkFile(t, filepath.Join(dest, "usr/lib/sysusers.d/webswitch.conf"), 0o644, readFile(t, "sysusers.d/webswitch.conf"))
	sw, err := conf.LoadSwitch(filepath.Join(confDir, "switch.toml"))
	if err != nil {
		t.Fatalf("installed switch.toml: %v", err)
	}
	agent, err := conf.LoadAgent(filepath.Join(confDir, "agent.toml"))
	if err != nil {
		t.Fatalf("installed agent.toml: %v", err)
	}

	t.Run("units", func(t *testing.T) {
		ws := readUnit(t, filepath.Join(unitDir, "webswitch.service"))
		hd := readUnit(t, filepath.Join(unitDir, "handoffd.service"))
		if got := ws.one(t, "ExecStart"); !strings.HasPrefix(got, "/usr/local/bin/webswitch -config /etc/webswitch/switch.toml") {
			t.Errorf("webswitch ExecStart=%s", got)
		}
		// The capabilities each daemon needs, and no more (the units'
		// comments say why).
		for _, c := range []struct {
			u    unit
			caps string
		}{{ws, "CAP_NET_RAW"}, {hd, "CAP_NET_ADMIN CAP_NET_BIND_SERVICE"}} {
			if a, b := c.u.one(t, "AmbientCapabilities"), c.u.one(t, "CapabilityBoundingSet"); a != c.caps || b != c.caps {
				t.Errorf("AmbientCapabilities=%s CapabilityBoundingSet=%s, want %s", a, b, c.caps)
			}
			for key, want := range map[string]string{"User": "webswitch", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateUsers": ""} {
				if got := strings.Join(c.u[key], " "); got != want {
					t.Errorf("%s=%s, want %q", key, got, want)
				}
			}
		}
		if !strings.Contains(string(readFile(t, "sysusers.d/webswitch.conf")), "\nu webswitch ") {
			t.Error("sysusers.d/webswitch.conf does not create the user webswitch")
		}
		// handoffd: upgrades with SIGHUP and follows its PID file; stops
		// after draining for up to serve.drain_timeout.
		execStart := hd.one(t, "ExecStart")
		if !strings.HasPrefix(execStart, "/usr/local/bin/handoffd -config /etc/webswitch/agent.toml ") {
			t.Errorf("handoffd ExecStart=%s", execStart)
		}
		if pid := hd.one(t, "PIDFile"); !strings.HasSuffix(execStart, " -pid-file "+pid) || !strings.HasPrefix(pid, "/run/"+hd.one(t, "RuntimeDirectory")+"/") {
			t.Errorf("PIDFile=%s is not ExecStart's -pid-file in the RuntimeDirectory: ExecStart=%s", pid, execStart)
		}
		for _, u := range []unit{ws, hd} {
			if got := u.one(t, "ExecReload"); got != "/bin/kill -HUP $MAINPID" {
				t.Errorf("ExecReload=%s", got)
			}
		}
		if got := hd.one(t, "ExecStartPre"); got != "+/usr/local/bin/handoffd setup-vip -config /etc/webswitch/agent.toml" {
			t.Errorf("ExecStartPre=%s", got)
		}
		for _, c := range []struct {
			u     unit
			drain time.Duration
		}{{ws, sw.Switch.DrainTimeout.Duration}, {hd, agent.Serve.DrainTimeout.Duration}} {
			stop, err := time.ParseDuration(c.u.one(t, "TimeoutStopSec"))
			if err != nil {
				t.Fatal(err)
			}
			if stop <= c.drain+10*time.Second {
				t.Errorf("TimeoutStopSec=%v is not well above the example's drain_timeout %v", stop, c.drain)
			}
		}
	})

	// A second install, elsewhere in PREFIX, keeps the configuration files
	// (one of them edited) and puts the new examples next to them.
	edited := append(bytes.Clone(switchExample), "# edited by the operator\n"...)
	if err := os.WriteFile(filepath.Join(confDir, "switch.toml"), edited, 0o644); err != nil {
		t.Fatal(err)
	}
	out := makeInstall(t, bin, "DESTDIR="+dest, "PREFIX=/opt/webswitch")
	checkFile(t, filepath.Join(confDir, "switch.toml"), 0o644, edited)
	checkFile(t, filepath.Join(confDir, "agent.toml"), 0o644, agentExample)
	checkFile(t, filepath.Join(confDir, "switch.toml.example"), 0o644, switchExample)
	checkFile(t, filepath.Join(confDir, "agent.toml.example"), 0o644, agentExample)
	if !strings.Contains(out, "kept "+filepath.Join(confDir, "switch.toml")) {
		t.Errorf("the second install does not say it kept switch.toml:\n%s", out)
	}
	installedBin := filepath.Join(dest, "opt/webswitch/bin")
	checkFile(t, filepath.Join(installedBin, "handoffd"), 0o755, nil)
	units := map[string][]byte{}
	for _, name := range []string{"webswitch.service", "handoffd.service"} {
		b := readFile(t, filepath.Join(unitDir, name))
		if bytes.Contains(b, []byte("/usr/local/bin/")) || !bytes.Contains(b, []byte("=/opt/webswitch/bin/")) {
			t.Errorf("%s does not run the binaries from PREFIX=/opt/webswitch", name)
		}
		units[name] = b
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			t.Skip("systemd-analyze not installed (Debian package systemd): the units are not verified")
		}
		// verify checks that each command exists: point the units at the
		// binaries installed under DESTDIR.
		dir := t.TempDir()
		var paths []string
		for name, b := range units {
			p := filepath.Join(dir, name)
			b = bytes.ReplaceAll(b, []byte("/opt/webswitch/bin/"), []byte(installedBin+"/"))
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		out, err := exec.Command("systemd-analyze", append([]string{"verify"}, paths...)...).CombinedOutput()
		// Unknown keys and bad values are only warnings: any output fails.
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}
