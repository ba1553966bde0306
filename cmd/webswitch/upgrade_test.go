package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

// fakeProc is a daemon whose upgrade is scripted: Upgrade answers err, or,
// when err is nil, accepts and makes Identity return next after gap (the
// old process answering meanwhile), as an exec would.
type fakeProc struct {
	err  error
	gap  time.Duration
	next *Identity // nil: the exec never happens

	mu  sync.Mutex
	cur Identity
}

func (f *fakeProc) Identity() Identity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *fakeProc) Upgrade() (string, error) {
	if f.err != nil {
		return "", f.err
	}
	if f.next != nil {
		time.AfterFunc(f.gap, func() {
			f.mu.Lock()
			f.cur = *f.next
			f.mu.Unlock()
		})
	}
	return "webswitch v2: switch.toml: configuration ok", nil
}

// TestCtlUpgrade runs ctl upgrade against the admin API of a fake switch:
// a good upgrade, each way it can be refused, and each way the new process
// can fail to show up.
func TestCtlUpgrade(t *testing.T) {
	started := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	old := Identity{PID: 42, Started: started, Version: "v1", SHA256: strings.Repeat("a", 64), Executable: "/usr/local/bin/webswitch"}
	upgraded := old
	upgraded.Started, upgraded.Version, upgraded.SHA256 = started.Add(time.Minute), "v2", strings.Repeat("b", 64)
	upgraded.Upgrade = &UpgradeRecord{From: old.String(), Stopped: started.Add(time.Minute), Gap: 3 * time.Millisecond}
	restarted := upgraded
	restarted.PID = 43
	sameBinary := upgraded
	sameBinary.SHA256 = old.SHA256
	for _, tc := range []struct {
		name     string
		proc     *fakeProc
		problems []string // what /healthz says
		status   int
		out      []string // in the standard output
		stderr   []string
	}{
		{name: "upgraded", proc: &fakeProc{next: &upgraded, gap: 100 * time.Millisecond}, out: []string{
			"checked: webswitch v2: switch.toml: configuration ok\n",
			"upgraded PID 42 from v1 (sha256 aaaaaaaaaaaa) to v2 (sha256 bbbbbbbbbbbb) in ",
			"; data path stopped for 3ms\n",
		}},
		{name: "same binary", proc: &fakeProc{next: &sameBinary}, out: []string{
			"upgraded PID 42 from v1 (sha256 aaaaaaaaaaaa) to v2 (sha256 aaaaaaaaaaaa)",
			"note: the binary is the same as before; was the new one installed at /usr/local/bin/webswitch?",
		}},
		{name: "check refused", proc: &fakeProc{err: errors.New("/usr/local/bin/webswitch -check: exit status 2: webswitch: switch.toml:3: switch.vip: not an address")},
			status: 1, stderr: []string{"400 Bad Request", "exit status 2", "switch.toml:3: switch.vip: not an address"}},
		{name: "busy", proc: &fakeProc{err: errUpgradeBusy}, status: 1, stderr: []string{"409 Conflict", "already under way"}},
		{name: "draining", proc: &fakeProc{err: errUpgradeDraining}, status: 1, stderr: []string{"409 Conflict", "draining"}},
		{name: "no exec", proc: &fakeProc{}, status: 1, stderr: []string{"no healthy new process within", "the old process still answers"}},
		{name: "restarted instead", proc: &fakeProc{next: &restarted}, status: 1, stderr: []string{"answers from PID 43, not 42", "restarted instead"}},
		{name: "unhealthy", proc: &fakeProc{next: &upgraded}, problems: []string{"shard 0: no loop round for 2s"}, status: 1,
			stderr: []string{"the new process, v2 (sha256 bbbbbbbbbbbb), is not healthy", "503", "no loop round"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.proc.cur = old
			srv := httptest.NewServer(adminHandler(&fakePath{problems: tc.problems}, nil, tc.proc, nil))
			defer srv.Close()
			var out, errOut bytes.Buffer
			status := ctl([]string{"-admin", strings.TrimPrefix(srv.URL, "http://"), "upgrade", "-timeout", "500ms"}, &out, &errOut)
			if status != tc.status {
				t.Errorf("status %d, want %d; stderr %s", status, tc.status, errOut.String())
			}
			for _, want := range tc.out {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains(errOut.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
				}
			}
		})
	}
}

// fakeBinary writes an executable shell script standing for the new
// webswitch binary and returns its path.
func fakeBinary(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "webswitch")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// testUpgrader returns an upgrader of a daemon started as exe with
// "-config switch.toml", whose stops append their names to *stops and
// whose data-path stop closes stopped.
func testUpgrader(t *testing.T, exe string, stops *[]string, stopped chan struct{}) *upgrader {
	t.Helper()
	u, err := newUpgrader([]string{exe, "-config", "switch.toml"}, time.Now(), nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	u.draining = func() bool { return false }
	u.stopAdmin = func(context.Context) error { *stops = append(*stops, "admin"); return nil }
	u.leave = func() { *stops = append(*stops, "bgp") }
	u.stopData = func() { *stops = append(*stops, "data path"); close(stopped) }
	return u
}

// TestUpgrader checks the binary before anything stops: a refusal (or no
// binary) leaves the process as it was, ready for another try; an
// acceptance stops the admin API, withdraws the VIP from the routers, then
// stops the data path, once.
func TestUpgrader(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		var stops []string
		u := testUpgrader(t, fakeBinary(t, `echo "webswitch: $3:3: switch.vip: not an address" >&2; exit 2`), &stops, make(chan struct{}))
		_, err := u.Upgrade()
		if err == nil || !strings.Contains(err.Error(), "exit status 2: webswitch: switch.toml:3: switch.vip: not an address") {
			t.Errorf("Upgrade: %v, want the check's exit status and message", err)
		}
		if u.accepted() || len(stops) != 0 || u.state.Load() != upgradeIdle {
			t.Errorf("after a refusal: accepted %v, stops %v, state %d; want nothing stopped, ready again", u.accepted(), stops, u.state.Load())
		}
	})
	t.Run("no binary", func(t *testing.T) {
		var stops []string
		u := testUpgrader(t, fakeBinary(t, "exit 0"), &stops, make(chan struct{}))
		u.id.Executable = filepath.Join(t.TempDir(), "gone")
		if _, err := u.Upgrade(); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("Upgrade of a missing binary: %v", err)
		}
	})
	t.Run("draining", func(t *testing.T) {
		var stops []string
		u := testUpgrader(t, fakeBinary(t, "exit 0"), &stops, make(chan struct{}))
		u.draining = func() bool { return true }
		if _, err := u.Upgrade(); !errors.Is(err, errUpgradeDraining) {
			t.Errorf("Upgrade while draining: %v, want errUpgradeDraining", err)
		}
	})
	t.Run("accepted", func(t *testing.T) {
		var stops []string
		stopped := make(chan struct{})
		u := testUpgrader(t, fakeBinary(t, `echo "checked $@"`), &stops, stopped)
		out, err := u.Upgrade()
		if err != nil || out != "checked -check -config switch.toml" {
			t.Fatalf("Upgrade: %q, %v; want the check run with -check and the daemon's arguments", out, err)
		}
		if _, err := u.Upgrade(); !errors.Is(err, errUpgradeBusy) {
			t.Errorf("a second Upgrade: %v, want errUpgradeBusy", err)
		}
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("the data path was not stopped")
		}
		if diff := cmp.Diff([]string{"admin", "bgp", "data path"}, stops); diff != "" || !u.accepted() {
			t.Errorf("stops (-want +got):\n%s; accepted %v", diff, u.accepted())
		}
		if u.record.From != u.Identity().String() || u.record.Stopped.IsZero() {
			t.Errorf("record %+v, want this build and the stop time", u.record)
		}
	})
}

// execHelperEnv makes TestUpgradeExec's own binary the process that
// upgrades.
const execHelperEnv = "WEBSWITCH_TEST_EXEC_HELPER"

// TestUpgradeExec runs this test binary as a daemon that upgrades to a
// shell: the shell must run in the same process, with the arguments and
// the environment, and the upgrade's record.
func TestUpgradeExec(t *testing.T) {
	if os.Getenv(execHelperEnv) != "" {
		u := &upgrader{
			id:     Identity{Executable: "/bin/sh"},
			args:   []string{"sh", "-c", `echo "$$ $` + execHelperEnv + ` $` + upgradeEnv + `"`},
			log:    zerolog.Nop(),
			record: UpgradeRecord{From: "v1", Stopped: time.Unix(1700000000, 5)},
		}
		os.Exit(u.exec())
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestUpgradeExec$")
	cmd.Env = append(os.Environ(), execHelperEnv+"=kept")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	f := strings.SplitN(strings.TrimSpace(string(out)), " ", 3)
	if len(f) != 3 {
		t.Fatalf("helper printed %q", out)
	}
	if pid, _ := strconv.Atoi(f[0]); pid != cmd.Process.Pid || f[1] != "kept" {
		t.Errorf("the shell ran as PID %s with %s=%q; want PID %d and the environment kept", f[0], execHelperEnv, f[1], cmd.Process.Pid)
	}
	var rec UpgradeRecord
	if err := json.Unmarshal([]byte(f[2]), &rec); err != nil || rec.From != "v1" || !rec.Stopped.Equal(time.Unix(1700000000, 5)) {
		t.Errorf("%s=%s (%v), want the record", upgradeEnv, f[2], err)
	}
}

// TestTakeUpgradeRecord reads the record an upgrade leaves and removes it
// from the environment.
func TestTakeUpgradeRecord(t *testing.T) {
	want := UpgradeRecord{From: "v1 (sha256 aaaaaaaaaaaa)", Stopped: time.Unix(1700000000, 5).UTC()}
	b, _ := json.Marshal(want)
	t.Setenv(upgradeEnv, string(b))
	got := takeUpgradeRecord()
	if got == nil {
		t.Fatal("no record")
	}
	if diff := cmp.Diff(want, *got); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	if _, ok := os.LookupEnv(upgradeEnv); ok {
		t.Errorf("%s still in the environment", upgradeEnv)
	}
	if got := takeUpgradeRecord(); got != nil {
		t.Errorf("second take: %+v, want nil", got)
	}
}

// TestSelfPath finds the binary an upgrade runs from how the daemon was
// started.
func TestSelfPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "webswitch")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Chdir(dir)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ argv0, want string }{
		{bin, bin},
		{"./webswitch", bin},
		{"webswitch", bin},
		{"nowhere/webswitch", self},
	} {
		if got, err := selfPath(tc.argv0); err != nil || got != tc.want {
			t.Errorf("selfPath(%q) = %q, %v; want %q", tc.argv0, got, err, tc.want)
		}
	}
}
