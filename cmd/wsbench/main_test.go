package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"webswitch/bench/testbed"
)

// runCLI runs wsbench with args and returns its exit status and output.
func runCLI(args ...string) (status int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	status = run(args, &out, &errOut)
	return status, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	stateDir = t.TempDir()
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantStderr string
	}{
		{name: "no command", args: nil, wantStatus: 2, wantStderr: "testbed"},
		{name: "help", args: []string{"help"}, wantStatus: 2, wantStderr: "commands:"},
		{name: "unknown command", args: []string{"nope"}, wantStatus: 2, wantStderr: `unknown command "nope"`},
		{name: "testbed alone", args: []string{"testbed"}, wantStatus: 2, wantStderr: "wsbench testbed up"},
		{name: "unknown testbed command", args: []string{"testbed", "sideways"}, wantStatus: 2, wantStderr: `unknown testbed command "sideways"`},
		{name: "down without prefix", args: []string{"testbed", "down"}, wantStatus: 2, wantStderr: "-prefix is required"},
		{name: "unknown flag", args: []string{"testbed", "up", "-bogus"}, wantStatus: 2, wantStderr: "-bogus"},
		{name: "positional argument", args: []string{"testbed", "up", "extra"}, wantStatus: 2, wantStderr: "unexpected arguments: extra"},
		{name: "list with arguments", args: []string{"testbed", "list", "x"}, wantStatus: 2, wantStderr: "wsbench testbed list"},
		{name: "bad prefix", args: []string{"testbed", "down", "-prefix", "../etc"}, wantStatus: 1, wantStderr: "prefix must be"},
		{name: "too many back-ends", args: []string{"testbed", "up", "-prefix", "wsHFx", "-backends", "1000"}, wantStatus: 1, wantStderr: "Backends must be"},
		{name: "too many switches", args: []string{"testbed", "up", "-prefix", "wsHFx", "-switches", "9"}, wantStatus: 1, wantStderr: "Switches must be"},
		{name: "unknown router", args: []string{"testbed", "up", "-prefix", "wsHFx", "-router", "quagga"}, wantStatus: 1, wantStderr: "unknown router"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, stderr := runCLI(tt.args...)
			if status != tt.wantStatus || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("wsbench %q: status %d, stderr %q; want %d and %q", tt.args, status, stderr, tt.wantStatus, tt.wantStderr)
			}
		})
	}
}

func TestList(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: needs the ip command (iproute2)")
	}
	stateDir = t.TempDir()
	prefix := fmt.Sprintf("wsHF%dgone", os.Getpid())
	st, err := json.Marshal(testbedState{Prefix: prefix, Backends: 2, CongestionControl: "cubic", ClientOffloads: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(statePath(prefix), st, 0o644); err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr := runCLI("testbed", "list")
	if status != 0 {
		t.Fatalf("list: status %d: %s", status, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "PREFIX") || !strings.HasPrefix(lines[1], prefix+" ") || !strings.HasSuffix(lines[1], "0 of 5") {
		t.Errorf("list output:\n%s\nwant a header and %s with 0 of 5 namespaces", stdout, prefix)
	}
}

func TestTestbedUpDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: needs the ip command (iproute2)")
	}
	stateDir = t.TempDir()
	prefix := fmt.Sprintf("wsHF%dc", os.Getpid())
	t.Cleanup(func() { runCLI("testbed", "down", "-prefix", prefix) })

	status, stdout, stderr := runCLI("testbed", "up", "-prefix", prefix, "-backends", "1", "-cc", "reno")
	if status != 0 {
		t.Fatalf("up: status %d: %s", status, stderr)
	}
	if !strings.Contains(stdout, "prefix: "+prefix) || !strings.Contains(stdout, "Congestion control: reno") {
		t.Errorf("up output does not give the prefix and congestion control:\n%s", stdout)
	}
	b, err := os.ReadFile(statePath(prefix))
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	var st testbedState
	if err := json.Unmarshal(b, &st); err != nil || st.Prefix != prefix || st.Backends != 1 || st.CongestionControl != "reno" || !st.ClientOffloads {
		t.Errorf("state file %s: %+v, %v", b, st, err)
	}
	if status, stdout, _ := runCLI("testbed", "list"); status != 0 || !strings.Contains(stdout, "4 of 4") {
		t.Errorf("list: status %d:\n%s\nwant 4 of 4 namespaces", status, stdout)
	}

	// Down works without the state file too.
	if err := os.Remove(statePath(prefix)); err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr = runCLI("testbed", "down", "-prefix", prefix)
	if status != 0 || !strings.Contains(stdout, "deleted 4 namespaces") {
		t.Fatalf("down: status %d: %s%s", status, stdout, stderr)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), prefix+"-") {
		t.Errorf("namespaces left after down:\n%s", out)
	}
	if status, stdout, _ := runCLI("testbed", "down", "-prefix", prefix); status != 0 || !strings.Contains(stdout, "no testbed") {
		t.Errorf("second down: status %d: %s", status, stdout)
	}
}

// TestTestbedUpRouted brings a routed testbed up with the command, checks
// that its router runs after "up" returned and answers on its socket, and
// that "down" stops it and deletes everything.
func TestTestbedUpRouted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces")
	}
	for _, c := range []string{"ip", "bird", "birdc"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("skipping: needs %s", c)
		}
	}
	stateDir = t.TempDir()
	prefix := fmt.Sprintf("wsHF%dr", os.Getpid())
	t.Cleanup(func() { runCLI("testbed", "down", "-prefix", prefix) })

	status, stdout, stderr := runCLI("testbed", "up", "-prefix", prefix, "-backends", "1", "-switches", "3", "-router", "bird")
	if status != 0 {
		t.Fatalf("up: status %d: %s", status, stderr)
	}
	if !strings.Contains(stdout, prefix+"-rtr (router 198.18.0.1") || !strings.Contains(stdout, "birdc -s ") {
		t.Errorf("up output does not describe the router:\n%s", stdout)
	}
	if status, stdout, _ := runCLI("testbed", "list"); status != 0 || !strings.Contains(stdout, " 3  ") || !strings.Contains(stdout, "bird") || !strings.Contains(stdout, "7 of 7") {
		t.Errorf("list: status %d:\n%s\nwant 3 switches, bird and 7 of 7 namespaces", status, stdout)
	}
	tb, err := testbed.Attach(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if sessions, err := tb.BGPSessions(); err != nil || len(sessions) != 3 {
		t.Errorf("the router's BGP sessions after up: %+v %v, want 3", sessions, err)
	}
	out, err := exec.Command("ip", "netns", "pids", prefix+"-rtr").Output()
	// This process is listed too if its main thread joined the namespace
	// (testbed.Do).
	pids := slices.DeleteFunc(strings.Fields(string(out)), func(pid string) bool { return pid == strconv.Itoa(os.Getpid()) })
	if err != nil || len(pids) != 1 {
		t.Fatalf("processes in the router's namespace: %q %v, want bird", out, err)
	}
	bird := pids[0]

	status, stdout, stderr = runCLI("testbed", "down", "-prefix", prefix)
	if status != 0 || !strings.Contains(stdout, "deleted 7 namespaces") {
		t.Fatalf("down: status %d: %s%s", status, stdout, stderr)
	}
	if _, err := os.Stat("/proc/" + bird); err == nil {
		t.Errorf("bird (pid %s) survived down", bird)
	}
	if _, err := os.Stat(testbed.RouterDir(prefix)); !os.IsNotExist(err) {
		t.Errorf("router directory after down: %v", err)
	}
}
