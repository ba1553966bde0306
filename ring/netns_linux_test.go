package ring

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// requireRoot skips tests that create namespaces and packet sockets.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and AF_PACKET sockets")
	}
}

// lanSeq numbers the test LANs of this process.
var lanSeq atomic.Int32

// lan is a test network: a bridge in its own namespace and one namespace per
// host, each with eth0 (MAC 02:00:00:00:00:<n>, 198.18.0.<n>/24) on the bridge.
type lan struct {
	prefix string
}

// hostNS returns the namespace of host n.
func (l lan) hostNS(n int) string { return fmt.Sprintf("%sh%d", l.prefix, n) }

// mac returns the MAC address of host n.
func mac(n int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, byte(n)} }

// ip runs ip(8) with args and fails the test on error.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newLAN creates the bridge and hosts 1..n; t.Cleanup deletes them all.
func newLAN(t *testing.T, hosts ...int) lan {
	t.Helper()
	l := lan{prefix: fmt.Sprintf("wsHE%d-%d-", os.Getpid(), lanSeq.Add(1))}
	addNS := func(name string) {
		ip(t, "netns", "add", name)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	}
	br := l.prefix + "lan"
	addNS(br)
	ip(t, "-n", br, "link", "add", "br0", "type", "bridge")
	ip(t, "-n", br, "link", "set", "br0", "up")
	for _, n := range hosts {
		ns, port := l.hostNS(n), fmt.Sprintf("p%d", n)
		addNS(ns)
		ip(t, "-n", br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ip(t, "-n", br, "link", "set", port, "master", "br0", "up")
		ip(t, "-n", ns, "link", "set", "eth0", "address", mac(n).String())
		ip(t, "-n", ns, "addr", "add", fmt.Sprintf("198.18.0.%d/24", n), "dev", "eth0")
		ip(t, "-n", ns, "link", "set", "eth0", "up")
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}
	return l
}

// inNetns runs f on a thread switched into namespace ns: sockets f creates
// live in ns. Goroutines f starts do not. It fails only if it cannot enter ns,
// and then does not run f.
func inNetns(ns string, f func()) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	defer func() {
		// If the thread cannot go back, leave it locked: it exits with the goroutine.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	f()
	return nil
}

// mustInNetns is inNetns for the test's own goroutine.
func mustInNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	if err := inNetns(ns, f); err != nil {
		t.Fatal(err)
	}
}

// goInNetns runs f in a new goroutine in namespace ns.
func goInNetns(t *testing.T, ns string, f func()) {
	go func() {
		if err := inNetns(ns, f); err != nil {
			t.Error(err)
		}
	}()
}

// openIn opens a ring on eth0 of namespace ns, closed by t.Cleanup.
func openIn(t *testing.T, ns string, cfg Config) *Ring {
	t.Helper()
	cfg.Interface = "eth0"
	var r *Ring
	var err error
	mustInNetns(t, ns, func() { r, err = Open(cfg) })
	if err != nil {
		t.Fatalf("Open in %s: %v", ns, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
