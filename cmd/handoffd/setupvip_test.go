package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// helperEnv makes the test binary run handoffd's run() instead of the tests
// (see TestMain), so that the root test can run "handoffd setup-vip" inside
// a network namespace with ip netns exec.
const helperEnv = "WSI_HANDOFFD_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(run())
	}
	os.Exit(m.Run())
}

// fakeHost is a backendHost in memory that records the changes made.
type fakeHost struct {
	sysctls map[string]string
	ifaddrs []ifaceAddr
	changes []string
	failSet string // a sysctl whose write fails
}

func (h *fakeHost) sysctl(name string) (string, error) {
	v, ok := h.sysctls[name]
	if !ok {
		return "", os.ErrNotExist
	}
	return v, nil
}

func (h *fakeHost) setSysctl(name, value string) error {
	if name == h.failSet {
		return os.ErrPermission
	}
	h.sysctls[name] = value
	h.changes = append(h.changes, name+"="+value)
	return nil
}

func (h *fakeHost) addrs() ([]ifaceAddr, error) { return h.ifaddrs, nil }

func (h *fakeHost) addLoopback(p netip.Prefix) error {
	h.ifaddrs = append(h.ifaddrs, ifaceAddr{loopback, p})
	h.changes = append(h.changes, "lo "+p.String())
	return nil
}

var testVIP = netip.MustParseAddr("198.18.0.100")

func newFakeHost(ignore, announce string, addrs ...ifaceAddr) *fakeHost {
	return &fakeHost{
		sysctls: map[string]string{"net.ipv4.conf.all.arp_ignore": ignore, "net.ipv4.conf.all.arp_announce": announce},
		ifaddrs: append([]ifaceAddr{{loopback, netip.MustParsePrefix("127.0.0.1/8")}, {"eth0", netip.MustParsePrefix("198.18.0.21/24")}}, addrs...),
	}
}

func TestPrepareBackend(t *testing.T) {
	vipOnLo := ifaceAddr{loopback, netip.PrefixFrom(testVIP, 32)}
	tests := []struct {
		name    string
		host    *fakeHost
		changes []string // in order
		out     string
		err     string
	}{{
		name:    "fresh host: sysctls first, then the VIP",
		host:    newFakeHost("0", "0"),
		changes: []string{"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2", "lo 198.18.0.100/32"},
		out: "net.ipv4.conf.all.arp_ignore = 1: set (was 0)\n" +
			"net.ipv4.conf.all.arp_announce = 2: set (was 0)\n" +
			"198.18.0.100/32 on lo: added\n",
	}, {
		name: "already prepared",
		host: newFakeHost("1", "2", vipOnLo),
		out: "net.ipv4.conf.all.arp_ignore = 1: already set\n" +
			"net.ipv4.conf.all.arp_announce = 2: already set\n" +
			"198.18.0.100/32 on lo: already set\n",
	}, {
		name:    "VIP there, one sysctl missing",
		host:    newFakeHost("1", "1", vipOnLo),
		changes: []string{"net.ipv4.conf.all.arp_announce=2"},
		out: "net.ipv4.conf.all.arp_ignore = 1: already set\n" +
			"net.ipv4.conf.all.arp_announce = 2: set (was 1)\n" +
			"198.18.0.100/32 on lo: already set\n",
	}, {
		name: "VIP on another interface: nothing changed",
		host: newFakeHost("0", "0", ifaceAddr{"eth0", netip.PrefixFrom(testVIP, 32)}),
		err:  "the VIP 198.18.0.100 is configured on eth0",
	}, {
		name: "VIP on lo with another prefix length: nothing changed",
		host: newFakeHost("0", "0", ifaceAddr{loopback, netip.PrefixFrom(testVIP, 24)}),
		err:  "the VIP is on lo as 198.18.0.100/24, not 198.18.0.100/32",
	}, {
		name: "a sysctl cannot be written",
		host: func() *fakeHost { h := newFakeHost("0", "0"); h.failSet = "net.ipv4.conf.all.arp_ignore"; return h }(),
		err:  "net.ipv4.conf.all.arp_ignore = 1: permission denied",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := prepareBackend(tt.host, testVIP, &out)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tt.host.changes, tt.changes) {
				t.Errorf("changes %q, want %q", tt.host.changes, tt.changes)
			}
			if out.String() != tt.out && tt.err == "" {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tt.out)
			}
		})
	}
}

func TestSetupVIPUsage(t *testing.T) {
	dir := t.TempDir()
	badConf := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(badConf, []byte("[agent]\nvip = \"not an address\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{}, // neither -config nor -vip
		{"-vip", "198.18.0.100", "-config", badConf}, // both
		{"-vip", "2001:db8::1"},                      // not IPv4
		{"-vip", "198.18.0.100", "extra"},            // stray argument
		{"-config", badConf},                         // invalid configuration
		{"-config", filepath.Join(dir, "missing.toml")},
	} {
		if got := setupVIP(args); got != 2 {
			t.Errorf("setup-vip %q: exit status %d, want 2", args, got)
		}
	}
}

// TestSetupVIPNamespace runs "handoffd setup-vip" twice in a network
// namespace of its own: the first run makes the changes, the second finds
// everything set and changes nothing.
func TestSetupVIPNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	ns := newNamespace(t)
	dir := t.TempDir()
	agentConf := filepath.Join(dir, "agent.toml")
	err := os.WriteFile(agentConf, []byte(`[agent]
listen = "198.18.0.21:7070"
vip = "198.18.0.100"
secret_file = "secret"
[serve]
static_root = "."
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}

	before := nsState(t, ns)
	if before.vipOnLo {
		t.Fatalf("a new namespace already has the VIP: %+v", before)
	}
	out := runSetupVIP(t, ns, "-config", agentConf)
	first := nsState(t, ns)
	want := nsSnapshot{arpIgnore: "1", arpAnnounce: "2", vipOnLo: true}
	if first != want {
		t.Fatalf("after the first run: %+v, want %+v", first, want)
	}
	step := func(name, value, old string) string {
		if old == value {
			return name + " = " + value + ": already set"
		}
		return fmt.Sprintf("%s = %s: set (was %s)", name, value, old)
	}
	for _, line := range []string{
		step("net.ipv4.conf.all.arp_ignore", "1", before.arpIgnore),
		step("net.ipv4.conf.all.arp_announce", "2", before.arpAnnounce),
		"198.18.0.100/32 on lo: added",
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("first run: output lacks %q:\n%s", line, out)
		}
	}

	out = runSetupVIP(t, ns, "-vip", "198.18.0.100")
	if second := nsState(t, ns); second != first {
		t.Errorf("the second run changed the namespace: %+v, then %+v", first, second)
	}
	if n := strings.Count(out, ": already set\n"); n != 3 || strings.Count(out, "\n") != 3 {
		t.Errorf("second run: want 3 lines, all \"already set\":\n%s", out)
	}
}

// newNamespace creates a network namespace named "wsi" followed by random
// hex digits, deleted when the test ends or the test binary is interrupted.
func newNamespace(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	ns := "wsi" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	del := func() error {
		out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip netns del %s: %w: %s", ns, err, out)
		}
		return nil
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	stop := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			del()
			os.Exit(130)
		case <-stop:
		}
	}()
	t.Cleanup(func() {
		signal.Stop(sigs)
		close(stop)
		if err := del(); err != nil {
			t.Error(err)
		}
	})
	return ns
}

// runSetupVIP runs "handoffd setup-vip args..." in the namespace ns and
// returns its standard output; it fails the test unless the exit status is 0.
func runSetupVIP(t *testing.T, ns string, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, os.Args[0], "setup-vip"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("setup-vip %q: exit status %d: %s", args, ee.ExitCode(), stderr.String())
		}
		t.Fatal(err)
	}
	return stdout.String()
}

// nsSnapshot is what setup-vip changes in a namespace.
type nsSnapshot struct {
	arpIgnore, arpAnnounce string
	vipOnLo                bool // 198.18.0.100/32 is on lo
}

// nsState reads the namespace's sysctls and lo's addresses with the ip
// command, independently of the code under test.
func nsState(t *testing.T, ns string) nsSnapshot {
	t.Helper()
	read := func(args ...string) string {
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).Output()
		if err != nil {
			t.Fatalf("%q in %s: %v", args, ns, err)
		}
		return string(out)
	}
	addrs := read("ip", "-4", "-o", "addr", "show", "dev", "lo")
	return nsSnapshot{
		arpIgnore:   strings.TrimSpace(read("cat", "/proc/sys/net/ipv4/conf/all/arp_ignore")),
		arpAnnounce: strings.TrimSpace(read("cat", "/proc/sys/net/ipv4/conf/all/arp_announce")),
		vipOnLo:     strings.Contains(addrs, " inet 198.18.0.100/32 "),
	}
}
