package testbed

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// testbeds counts the testbeds made by this test process, for unique
// prefixes.
var testbeds atomic.Int32

// needRoot skips the test unless it can create network namespaces.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: needs the ip command (iproute2)")
	}
}

// testPrefix returns a prefix unique to this test process: "wsHF", the pid
// and a letter.
func testPrefix() string {
	return fmt.Sprintf("wsHF%d%c", os.Getpid(), 'a'+testbeds.Add(1)-1)
}

// upTestbed brings a testbed up with a test prefix and tears it down when
// the test ends.
func upTestbed(t *testing.T, cfg Config) *Testbed {
	t.Helper()
	cfg.Prefix = testPrefix()
	tb, err := Up(cfg)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		if err := tb.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return tb
}

// namespacesWithPrefix returns the namespaces in "ip netns list" whose name
// starts with prefix and a hyphen.
func namespacesWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	all, err := listNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for ns := range all {
		if strings.HasPrefix(ns, prefix+"-") {
			names = append(names, ns)
		}
	}
	slices.Sort(names)
	return names
}

// ping sends one ICMP echo request from host to dst and waits up to 2 s
// for the reply.
func ping(tb *Testbed, host, dst string) error {
	return tb.Do(host, func() error {
		c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		defer c.Close()
		id := uint16(os.Getpid())
		req := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'w', 's'}
		binary.BigEndian.PutUint16(req[2:], icmpChecksum(req))
		if _, err := c.WriteTo(req, &net.IPAddr{IP: net.ParseIP(dst)}); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return fmt.Errorf("ping %s from %s: %w", dst, host, err)
			}
			if from.String() == dst && n >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:]) == id {
				return nil
			}
		}
	})
}

// icmpChecksum returns the Internet checksum of b.
func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// macOf returns the hardware address of ifname in the namespace of host.
func macOf(tb *Testbed, host, ifname string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := tb.Do(host, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	return mac, err
}

// arpWhoHas broadcasts an ARP request for target from the client's eth0
// and returns the sender hardware addresses of the replies for target seen
// within wait.
func arpWhoHas(tb *Testbed, target string, wait time.Duration) ([]net.HardwareAddr, error) {
	var macs []net.HardwareAddr
	err := tb.Do("cli", func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		frame := slices.Concat[[]byte](bcast, ifi.HardwareAddr, []byte{0x08, 0x06}, // Ethernet
			[]byte{0, 1, 0x08, 0x00, 6, 4, 0, 1}, // ARP request, Ethernet/IPv4
			ifi.HardwareAddr, net.ParseIP(ClientIP).To4(),
			make([]byte, 6), net.ParseIP(target).To4())
		if _, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: bcast}); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			if err != nil {
				return err
			}
			arp := buf[14:n]
			if n >= 42 && binary.BigEndian.Uint16(arp[6:]) == 2 && net.IP(arp[14:18]).String() == target {
				macs = append(macs, net.HardwareAddr(slices.Clone(arp[8:14])))
			}
		}
	})
	return macs, err
}

// transfer sends n bytes over TCP from the client to back-end 1 and returns
// the congestion control algorithms of the client's and the back-end's
// sockets.
func transfer(tb *Testbed, n int64) (cliCC, beCC string, err error) {
	var ln net.Listener
	if err := tb.Do("be1", func() (err error) {
		ln, err = net.Listen("tcp4", BackendIP(1)+":0")
		return err
	}); err != nil {
		return "", "", err
	}
	defer ln.Close()
	type result struct {
		cc  string
		err error
	}
	served := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- result{err: err}
			return
		}
		defer c.Close()
		cc, err := congestionControl(c)
		if err == nil {
			_, err = io.Copy(io.Discard, c)
		}
		served <- result{cc, err}
	}()
	err = tb.Do("cli", func() error {
		c, err := net.DialTimeout("tcp4", ln.Addr().String(), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if cliCC, err = congestionControl(c); err != nil {
			return err
		}
		_, err = io.CopyN(c, zeros{}, n)
		return err
	})
	if err != nil {
		return "", "", err
	}
	r := <-served
	return cliCC, r.cc, r.err
}

// congestionControl returns the TCP_CONGESTION of a TCP connection.
func congestionControl(c net.Conn) (string, error) {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return "", err
	}
	var cc string
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cc, serr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	}); err != nil {
		return "", err
	}
	return cc, serr
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func TestUp(t *testing.T) {
	needRoot(t)
	start := time.Now()
	tb := upTestbed(t, Config{Backends: 2})
	t.Logf("Up took %v: %s", time.Since(start), tb.Describe())

	t.Run("namespaces", func(t *testing.T) {
		want := []string{tb.NS("be1"), tb.NS("be2"), tb.NS("cli"), tb.NS("lan"), tb.NS("sw")}
		if got := namespacesWithPrefix(t, tb.Prefix); !slices.Equal(got, want) {
			t.Errorf("namespaces %v, want %v", got, want)
		}
	})

	t.Run("ping", func(t *testing.T) {
		for _, h := range []string{"be1", "be2", "sw"} {
			if err := ping(tb, "cli", tb.IP(h)); err != nil {
				t.Errorf("client to %s: %v", h, err)
			}
		}
		if err := ping(tb, "be2", ClientIP); err != nil {
			t.Errorf("be2 to client: %v", err)
		}
	})

	t.Run("no ARP for the VIP", func(t *testing.T) {
		be1MAC, err := macOf(tb, "be1", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		// The probe works: a back-end answers for its own address.
		macs, err := arpWhoHas(tb, BackendIP(1), 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(macs) != 1 || !bytes.Equal(macs[0], be1MAC) {
			t.Fatalf("ARP replies for %s: %v, want one from %v", BackendIP(1), macs, be1MAC)
		}
		macs, err = arpWhoHas(tb, VIP, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(macs) != 0 {
			t.Errorf("ARP replies for the VIP %s: %v, want none (arp_ignore on the back-ends)", VIP, macs)
		}
	})

	t.Run("route congctl", func(t *testing.T) {
		for _, h := range tb.Hosts()[1:] {
			out, err := run("ip", "-n", tb.NS(h), "route", "show", LAN)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "congctl cubic") || !strings.Contains(lines[0], "src "+tb.IP(h)) {
				t.Errorf("%s: LAN routes %q, want one with congctl cubic and src %s", h, out, tb.IP(h))
			}
		}
	})

	t.Run("sysctls and addresses", func(t *testing.T) {
		checks := []struct {
			host, file, want string
		}{
			{"sw", "/proc/sys/net/ipv4/ip_forward", "0"},
			{"cli", "/proc/sys/net/ipv6/conf/all/disable_ipv6", "1"},
			{"be1", "/proc/sys/net/ipv4/conf/all/arp_ignore", "1"},
			{"be1", "/proc/sys/net/ipv4/conf/all/arp_announce", "2"},
			{"be2", "/proc/sys/net/ipv4/conf/eth0/arp_ignore", "1"},
			{"be2", "/proc/sys/net/ipv4/conf/eth0/arp_announce", "2"},
		}
		if _, err := os.Stat("/proc/sys/net/bridge"); err == nil { // br_netfilter loaded
			checks = append(checks, struct{ host, file, want string }{"lan", "/proc/sys/net/bridge/bridge-nf-call-iptables", "0"})
		}
		for _, c := range checks {
			out, err := tb.Run(c.host, "cat", c.file)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out); got != c.want {
				t.Errorf("%s %s = %s, want %s", c.host, c.file, got, c.want)
			}
		}
		for h, wantVIP := range map[string]bool{"sw": false, "cli": false, "be1": true, "be2": true} {
			out, err := run("ip", "-n", tb.NS(h), "-o", "addr", "show")
			if err != nil {
				t.Fatal(err)
			}
			if hasVIP := strings.Contains(out, " "+VIP+"/32 "); hasVIP != wantVIP {
				t.Errorf("%s has the VIP: %v, want %v:\n%s", h, hasVIP, wantVIP, out)
			}
		}
		out, err := tb.Run("cli", "ethtool", "-k", "eth0")
		if err != nil {
			t.Skipf("ethtool: %v", err)
		}
		if !strings.Contains(out, "tcp-segmentation-offload: on") {
			t.Errorf("client offloads changed with ClientOffloads unset:\n%s", out)
		}
	})

	t.Run("TCP uses the route's congestion control, counters grow", func(t *testing.T) {
		rx0, tx0, err := tb.IfBytes("cli", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		snmp0, err := tb.SNMP("cli")
		if err != nil {
			t.Fatal(err)
		}
		const n = 1 << 20
		cliCC, beCC, err := transfer(tb, n)
		if err != nil {
			t.Fatal(err)
		}
		if cliCC != "cubic" || beCC != "cubic" {
			t.Errorf("congestion control: client %q, back-end %q, want cubic", cliCC, beCC)
		}
		rx1, tx1, err := tb.IfBytes("cli", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		snmp1, err := tb.SNMP("cli")
		if err != nil {
			t.Fatal(err)
		}
		if tx1-tx0 < n || rx1 <= rx0 {
			t.Errorf("client eth0 bytes: rx %d -> %d, tx %d -> %d, want tx to grow by at least %d", rx0, rx1, tx0, tx1, n)
		}
		for _, k := range []string{"Tcp.OutSegs", "Tcp.InSegs", "Tcp.ActiveOpens"} {
			if snmp1[k] <= snmp0[k] {
				t.Errorf("%s: %d -> %d, want it to grow", k, snmp0[k], snmp1[k])
			}
		}
		if _, ok := snmp1["TcpExt.TCPTimeouts"]; !ok {
			t.Errorf("SNMP has no TcpExt counters: %v", snmp1)
		}
	})

	t.Run("Start and Stop", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "sleep.log")
		p, err := tb.Start("be1", log, "sleep", "100")
		if err != nil {
			t.Fatal(err)
		}
		pid := p.Cmd.Process.Pid
		if !alive(pid) {
			t.Fatalf("sleep (pid %d) not running after Start", pid)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if alive(pid) {
			t.Errorf("sleep (pid %d) still running after Stop", pid)
		}
		if _, err := os.Stat(log); err != nil {
			t.Errorf("log file: %v", err)
		}

		p, err = tb.Start("cli", filepath.Join(t.TempDir(), "false.log"), "sh", "-c", "echo failing; exit 3")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err == nil {
			t.Fatal("Wait: no error for a process that exited with status 3")
		}
		if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("Stop of a failed process: %v, want its exit status", err)
		}
		if out, err := os.ReadFile(p.Log); err != nil || string(out) != "failing\n" {
			t.Errorf("log %q, %v; want the process's output", out, err)
		}
	})

	t.Run("Kill", func(t *testing.T) {
		p, err := tb.Start("sw", filepath.Join(t.TempDir(), "sleep.log"), "sleep", "100")
		if err != nil {
			t.Fatal(err)
		}
		pid := p.Cmd.Process.Pid
		if err := p.Kill(); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		if alive(pid) {
			t.Errorf("sleep (pid %d) still there after Kill: not reaped", pid)
		}
		var exit *exec.ExitError
		if err := p.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("Wait after Kill: %v, want killed by SIGKILL", err)
		}
		if err := p.Kill(); err == nil {
			t.Error("a second Kill: no error for a process that had exited")
		}
	})

	t.Run("Start survives Do", func(t *testing.T) {
		// Pdeathsig fires when the thread that started the process exits,
		// and every Do ends its thread.
		p, err := tb.Start("be1", filepath.Join(t.TempDir(), "sleep.log"), "sleep", "100")
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			if err := tb.Do("cli", func() error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-p.Done():
			t.Errorf("process killed by Do's thread exit: %v", p.Wait())
		case <-time.After(100 * time.Millisecond):
		}
		if err := p.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})

	t.Run("Down", func(t *testing.T) {
		p, err := tb.Start("sw", filepath.Join(t.TempDir(), "sleep.log"), "sleep", "100")
		if err != nil {
			t.Fatal(err)
		}
		pid := p.Cmd.Process.Pid
		if err := tb.Down(); err != nil {
			t.Fatalf("Down: %v", err)
		}
		if alive(pid) {
			t.Errorf("process %d started in the testbed survived Down", pid)
		}
		if left := namespacesWithPrefix(t, tb.Prefix); len(left) != 0 {
			t.Errorf("namespaces left after Down: %v", left)
		}
		if err := tb.Down(); err != nil {
			t.Errorf("second Down: %v", err)
		}
		if _, err := tb.Start("sw", filepath.Join(t.TempDir(), "x.log"), "true"); !errors.Is(err, ErrDown) {
			t.Errorf("Start after Down: %v, want ErrDown", err)
		}
	})
}

func TestUpClientOffloadsOff(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("skipping: needs ethtool")
	}
	off := false
	tb := upTestbed(t, Config{Backends: 1, ClientOffloads: &off, CongestionControl: "reno"})
	out, err := tb.Run("cli", "ethtool", "-k", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tx-checksumming", "tcp-segmentation-offload", "generic-segmentation-offload", "generic-receive-offload"} {
		if !strings.Contains(out, f+": off") {
			t.Errorf("client eth0 %s not off:\n%s", f, out)
		}
	}
	route, err := run("ip", "-n", tb.NS("be1"), "route", "show", LAN)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(route, "congctl reno") {
		t.Errorf("be1 LAN route %q, want congctl reno", route)
	}
	if d := tb.Describe(); !strings.Contains(d, "reno") || !strings.Contains(d, "offloads: off") {
		t.Errorf("Describe does not report reno and offloads off: %s", d)
	}
}

func TestUpFailures(t *testing.T) {
	needRoot(t)

	t.Run("namespace exists", func(t *testing.T) {
		prefix := testPrefix()
		taken := prefix + "-sw"
		if _, err := run("ip", "netns", "add", taken); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { run("ip", "netns", "delete", taken) })
		_, err := Up(Config{Prefix: prefix, Backends: 1})
		if !errors.Is(err, ErrExists) {
			t.Fatalf("Up with %s taken: %v, want ErrExists", taken, err)
		}
		if got := namespacesWithPrefix(t, prefix); !slices.Equal(got, []string{taken}) {
			t.Errorf("namespaces after the failed Up: %v, want only the one that was there", got)
		}
	})

	t.Run("torn down on error", func(t *testing.T) {
		prefix := testPrefix()
		_, err := Up(Config{Prefix: prefix, Backends: 1, CongestionControl: "no_such_cc"})
		if err == nil || !strings.Contains(err.Error(), "congctl no_such_cc") {
			t.Fatalf("Up with an unknown congestion control: %v, want an error naming the command", err)
		}
		if left := namespacesWithPrefix(t, prefix); len(left) != 0 {
			t.Errorf("namespaces left after the failed Up: %v", left)
		}
	})
}

func TestAttach(t *testing.T) {
	needRoot(t)
	tb := upTestbed(t, Config{Backends: 3})
	at, err := Attach(tb.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if at.Backends != 3 {
		t.Errorf("Attach: Backends %d, want 3", at.Backends)
	}
	if got, want := at.Namespaces(), tb.Namespaces(); !slices.Equal(got, want) {
		t.Errorf("Attach: namespaces %v, want %v", got, want)
	}
	if err := at.Down(); err != nil {
		t.Fatalf("Down of the attached testbed: %v", err)
	}
	if left := namespacesWithPrefix(t, tb.Prefix); len(left) != 0 {
		t.Errorf("namespaces left: %v", left)
	}
	none, err := Attach(tb.Prefix)
	if err != nil || len(none.Namespaces()) != 0 {
		t.Errorf("Attach after Down: %v, %v; want nothing", none.Namespaces(), err)
	}
}

// TestAddAttacker adds the attacker host to a running testbed: it reaches
// the other hosts, Attach finds it, and Down deletes it.
func TestAddAttacker(t *testing.T) {
	needRoot(t)
	tb := upTestbed(t, Config{Backends: 1})
	if err := tb.AddAttacker(); err != nil {
		t.Fatalf("AddAttacker: %v", err)
	}
	if err := tb.AddAttacker(); !errors.Is(err, ErrAttacker) {
		t.Errorf("second AddAttacker: %v, want ErrAttacker", err)
	}
	want := []string{tb.NS("atk"), tb.NS("be1"), tb.NS("cli"), tb.NS("lan"), tb.NS("sw")}
	if got := namespacesWithPrefix(t, tb.Prefix); !slices.Equal(got, want) {
		t.Errorf("namespaces %v, want %v", got, want)
	}
	for _, h := range []string{"cli", "sw"} {
		if err := ping(tb, "atk", tb.IP(h)); err != nil {
			t.Errorf("attacker to %s: %v", h, err)
		}
	}
	if !strings.Contains(tb.Describe(), "(attacker "+AttackerIP+")") {
		t.Errorf("Describe does not mention the attacker: %s", tb.Describe())
	}
	at, err := Attach(tb.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := at.Namespaces(), tb.Namespaces(); !slices.Equal(got, want) {
		t.Errorf("Attach: namespaces %v, want %v", got, want)
	}
	if err := tb.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if left := namespacesWithPrefix(t, tb.Prefix); len(left) != 0 {
		t.Errorf("namespaces left after Down: %v", left)
	}
	if err := tb.AddAttacker(); !errors.Is(err, ErrDown) {
		t.Errorf("AddAttacker after Down: %v, want ErrDown", err)
	}
}

// signalHelperEnv names the environment variable that makes
// TestHandleSignals act as the helper process; its value is the prefix.
const signalHelperEnv = "WSHF_SIGNAL_HELPER"

// TestHandleSignals runs the test binary again as a helper that brings a
// testbed up, starts a process in it, calls HandleSignals and waits. SIGTERM
// must tear the testbed down and exit with status 130.
func TestHandleSignals(t *testing.T) {
	if prefix := os.Getenv(signalHelperEnv); prefix != "" {
		signalHelper(prefix)
		return
	}
	needRoot(t)
	prefix := testPrefix()
	t.Cleanup(func() {
		if tb, err := Attach(prefix); err == nil {
			tb.Down()
		}
	})
	cmd := exec.Command(os.Args[0], "-test.run=^TestHandleSignals$")
	cmd.Env = append(os.Environ(), signalHelperEnv+"="+prefix)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	line, err := bufio.NewReader(out).ReadString('\n')
	if _, serr := fmt.Sscanf(line, "up %d", &pid); err != nil || serr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q, %v, %v; stderr:\n%s", line, err, serr, stderr.String())
	}
	if got := namespacesWithPrefix(t, prefix); len(got) != 4 {
		t.Errorf("helper's namespaces %v, want 4", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("helper exit: %v (code %d), want status 130; stderr:\n%s", err, code, stderr.String())
	}
	if left := namespacesWithPrefix(t, prefix); len(left) != 0 {
		t.Errorf("namespaces left after SIGTERM: %v", left)
	}
	if alive(pid) {
		t.Errorf("process %d started by the helper survived", pid)
	}
}

// signalHelper is the helper process of TestHandleSignals.
func signalHelper(prefix string) {
	tb, err := Up(Config{Prefix: prefix, Backends: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p, err := tb.Start("be1", os.DevNull, "sleep", "100")
	if err != nil {
		tb.Down()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tb.HandleSignals()
	fmt.Printf("up %d\n", p.Cmd.Process.Pid)
	time.Sleep(time.Minute)
	tb.Down()
	os.Exit(3)
}
