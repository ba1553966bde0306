// Package testbed builds the webswitch test network out of Linux network
// namespaces (DESIGN.md section 5): a LAN namespace holding a bridge, and one
// namespace each for the client, the switches and every back-end, each joined
// to the bridge by a veth pair whose host end is called eth0.
//
//	<prefix>-lan   br0, with the LAN ends of the veth pairs (named cli, sw, be1, ...)
//	<prefix>-cli   eth0 198.18.0.10/24
//	<prefix>-sw    eth0 198.18.0.2/24, ip_forward=0, no VIP in its kernel (switch 1)
//	<prefix>-swN   eth0 198.18.0.(N+1)/24, likewise, with Config.Switches > 1 (switch N)
//	<prefix>-beN   eth0 198.18.0.(20+N)/24, VIP 198.18.0.100/32 on lo, arp_ignore=1, arp_announce=2
//	<prefix>-atk   eth0 198.18.0.200/24, only after AddAttacker: a source of hostile traffic
//
// The routed variant (Config.Router) puts the client on a link of its own
// behind a router namespace, which reaches the VIP through the switches
// (by BGP and ECMP; see router.go):
//
//	<prefix>-rtr   eth0 198.18.0.1/24 on the LAN, eth1 198.19.0.1/24 to the client,
//	               ip_forward=1, L4 multipath hash, rp_filter off; runs BIRD or FRR
//	<prefix>-cli   eth0 198.19.0.2/24, default route via 198.19.0.1 (no LAN port)
//	<prefix>-beN   as above, with a route to 198.19.0.0/24 via 198.18.0.1
//
// Everything is done with the ip (iproute2) and ethtool commands run inside
// the namespaces; the root namespace's interfaces and routes are never
// touched. The package is Linux only and needs root.
package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Addresses of the test LAN.
const (
	LAN      = "198.18.0.0/24" // the LAN every host namespace is on
	ClientIP = "198.18.0.10"   // the client's eth0 address
	SwitchIP = "198.18.0.2"    // the switch's eth0 address
	VIP      = "198.18.0.100"  // the virtual IP; on the back-ends' lo, never in the switch's kernel
	// AttackerIP is the eth0 address of the optional attacker host (see
	// AddAttacker): above the VIP, so that no number of back-ends reaches it.
	AttackerIP = "198.18.0.200"
)

// Addresses of the routed testbed (Config.Router), inside 198.18.0.0/15
// and apart from the LAN's hosts.
const (
	RouterIP       = "198.18.0.1"    // the router's LAN address: the switches' BGP peer
	ClientNet      = "198.19.0.0/24" // the link between the router and the client
	RouterClientIP = "198.19.0.1"    // the router's address on ClientNet: the client's gateway
	RoutedClientIP = "198.19.0.2"    // the client's address behind the router
)

// BGP autonomous systems of the routed testbed: the router's, and the one
// every switch uses.
const (
	RouterAS = 65000
	SwitchAS = 65010
)

// Routers that Config.Router names.
const (
	RouterBIRD = "bird" // BIRD 2, from Debian's bird2
	RouterFRR  = "frr"  // FRR's zebra, bgpd and bfdd, from Debian's frr
)

// Limits on Config values.
const (
	// MaxBackends is the largest number of back-ends: their addresses
	// (198.18.0.21 upward) must stay below the VIP.
	MaxBackends = 64
	// MaxSwitches is the largest number of switches: their addresses
	// (198.18.0.2 upward) must stay below the client's.
	MaxSwitches = 8
	// MaxPrefixLen is the longest accepted namespace prefix.
	MaxPrefixLen = 24
)

// lanBits is the prefix length of LAN.
const lanBits = "24"

// Errors returned by Up and the Testbed methods.
var (
	ErrBadPrefix = errors.New("testbed: prefix must be 1-24 characters from [A-Za-z0-9_] starting with a letter")
	ErrBackends  = errors.New("testbed: Backends must be between 1 and 64")
	ErrSwitches  = errors.New("testbed: Switches must be between 1 and 8")
	ErrRouter    = errors.New("testbed: unknown router (want \"bird\" or \"frr\")")
	ErrExists    = errors.New("testbed: a namespace with this prefix already exists")
	ErrAttacker  = errors.New("testbed: the testbed already has its attacker host")
	ErrHost      = errors.New("testbed: unknown host")
	ErrDown      = errors.New("testbed: the testbed has been torn down")
)

// BackendIP returns the LAN address of back-end i, counting from 1:
// "198.18.0.21" for 1, "198.18.0.22" for 2, and so on.
func BackendIP(i int) string {
	return "198.18.0." + strconv.Itoa(20+i)
}

// SwitchHost returns the host name of switch i, counting from 1: "sw" for
// 1 (the switch of a one-switch testbed), "sw2", "sw3" and so on.
func SwitchHost(i int) string {
	if i == 1 {
		return "sw"
	}
	return "sw" + strconv.Itoa(i)
}

// SwitchAddr returns the LAN address of switch i, counting from 1: SwitchIP
// ("198.18.0.2") for 1, "198.18.0.3" for 2, and so on.
func SwitchAddr(i int) string {
	return "198.18.0." + strconv.Itoa(1+i)
}

// Config describes a testbed. The zero value is a valid configuration.
type Config struct {
	// Prefix starts every namespace name; it must be unique on the machine
	// while the testbed exists. Empty means "ws" followed by 4 random hex
	// digits, "p" and the process id, for example "ws3fa2p48211".
	Prefix string
	// Backends is the number of back-end namespaces; 0 means 2.
	Backends int
	// Switches is the number of switch namespaces; 0 means 1. Several
	// switches on one LAN all answer ARP for the VIP unless they announce
	// it by BGP: give them a Router.
	Switches int
	// Router, when not empty, puts the client behind a router namespace
	// running that routing daemon (RouterBIRD, RouterFRR), configured to
	// take the VIP/32 from every switch by BGP and to install one ECMP
	// route for it (see router.go). Its files (configuration, control
	// sockets, logs) are in RouterDir(Prefix), which Down deletes.
	Router string
	// Detach lets the router daemon outlive this process, as "wsbench
	// testbed up" needs: it gets no death signal. Down stops it, also
	// from a Testbed made by Attach.
	Detach bool
	// ClientOffloads leaves the client's veth offloads at their defaults
	// (partial checksums and TSO super-frames reach the switch) when nil or
	// true; false turns off tx checksumming, TSO, GSO and GRO on the
	// client's eth0 with ethtool.
	ClientOffloads *bool
	// CongestionControl is set with "congctl" on the LAN route of every host
	// namespace; empty means "cubic". New namespaces otherwise inherit the
	// host's algorithm (bbr on our machines, which is expensive on veth).
	CongestionControl string
}

// Testbed is a running test network. Its methods may be called from several
// goroutines.
type Testbed struct {
	Prefix            string // namespace name prefix
	Backends          int    // number of back-end namespaces
	Switches          int    // number of switch namespaces
	Router            string // the routing daemon (RouterBIRD, RouterFRR), "" without a router
	CongestionControl string // per-route congestion control; empty for an attached testbed
	ClientOffloads    bool   // whether the client's offloads were left on

	attacker    atomic.Bool // the host "atk" exists (AddAttacker, Attach)
	routed      bool        // the host "rtr" exists and the client is behind it
	detach      bool        // Config.Detach
	routerProcs []*Proc     // the routing daemon's processes started by Up, none when attached

	mu    sync.Mutex
	owned []string // namespaces this Testbed deletes on Down, in creation order
	procs []*Proc  // processes started by Start, stopped on Down
	down  bool
}

// Up creates the test network described by cfg. On any error it deletes the
// namespaces it created and returns the error.
func Up(cfg Config) (_ *Testbed, err error) {
	tb, err := newTestbed(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("testbed: the ip command (iproute2) is required: %w", err)
	}
	if !tb.ClientOffloads {
		if _, err := exec.LookPath("ethtool"); err != nil {
			return nil, fmt.Errorf("testbed: ClientOffloads=false needs the ethtool command: %w", err)
		}
	}
	if d, err := tb.daemon(); err == nil {
		if err := d.missing(); err != nil {
			return nil, err
		}
	}
	existing, err := listNamespaces()
	if err != nil {
		return nil, err
	}
	for _, ns := range orphans(existing, processExists) {
		if prefix, ok := strings.CutSuffix(ns, "-rtr"); ok {
			stopNamespaceProcs(ns, downGrace) // a detached router daemon
			os.RemoveAll(RouterDir(prefix))
		}
		// Best effort: a namespace another run is deleting at the same
		// moment is already gone.
		run("ip", "netns", "del", ns)
	}
	for _, h := range tb.Hosts() {
		if existing[tb.NS(h)] {
			return nil, fmt.Errorf("%w: %s", ErrExists, tb.NS(h))
		}
	}
	defer func() {
		if err != nil {
			if derr := tb.Down(); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()
	for _, h := range tb.Hosts() {
		if err := tb.addNamespace(h); err != nil {
			return nil, err
		}
	}
	lan := tb.NS("lan")
	if err := runAll(
		[]string{"ip", "-n", lan, "link", "add", "br0", "type", "bridge"},
		[]string{"ip", "-n", lan, "link", "set", "br0", "up"},
	); err != nil {
		return nil, err
	}
	if err := tb.bridgeWithoutNetfilter(); err != nil {
		return nil, err
	}
	for _, h := range tb.Hosts()[1:] {
		if err := tb.addHost(h); err != nil {
			return nil, err
		}
	}
	if tb.routed {
		if err := tb.startRouter(); err != nil {
			return nil, err
		}
	}
	return tb, nil
}

// newTestbed validates cfg and fills in its defaults.
func newTestbed(cfg Config) (*Testbed, error) {
	tb := &Testbed{
		Prefix:            cfg.Prefix,
		Backends:          cfg.Backends,
		Switches:          cfg.Switches,
		Router:            cfg.Router,
		CongestionControl: cfg.CongestionControl,
		ClientOffloads:    cfg.ClientOffloads == nil || *cfg.ClientOffloads,
		routed:            cfg.Router != "",
		detach:            cfg.Detach,
	}
	if tb.Prefix == "" {
		tb.Prefix = newPrefix()
	}
	if !validPrefix(tb.Prefix) {
		return nil, fmt.Errorf("%w: %q", ErrBadPrefix, tb.Prefix)
	}
	if tb.Backends == 0 {
		tb.Backends = 2
	}
	if tb.Backends < 1 || tb.Backends > MaxBackends {
		return nil, fmt.Errorf("%w: %d", ErrBackends, tb.Backends)
	}
	if tb.Switches == 0 {
		tb.Switches = 1
	}
	if tb.Switches < 1 || tb.Switches > MaxSwitches {
		return nil, fmt.Errorf("%w: %d", ErrSwitches, tb.Switches)
	}
	if _, ok := routerDaemons[tb.Router]; tb.Router != "" && !ok {
		return nil, fmt.Errorf("%w: %q", ErrRouter, tb.Router)
	}
	if tb.CongestionControl == "" {
		tb.CongestionControl = "cubic"
	}
	return tb, nil
}

// newPrefix returns "ws", 4 random hex digits, "p" and the process id.
func newPrefix() string {
	var b [2]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return "ws" + hex.EncodeToString(b[:]) + "p" + strconv.Itoa(os.Getpid())
}

// orphans returns the namespaces in existing that Up made with a default
// prefix (newPrefix) for a process that no longer exists: left behind by a
// test binary killed by its timeout, whose cleanups never ran. Namespaces
// with any other prefix, or of a live process, are never returned.
func orphans(existing map[string]bool, exists func(pid int) bool) []string {
	var out []string
	for ns := range existing {
		prefix, _, ok := strings.Cut(ns, "-")
		if !ok || len(prefix) < len("ws0000p1") || !strings.HasPrefix(prefix, "ws") || prefix[6] != 'p' {
			continue
		}
		if _, err := hex.DecodeString(prefix[2:6]); err != nil {
			continue
		}
		pid, err := strconv.Atoi(prefix[7:])
		if err != nil || pid <= 0 || exists(pid) {
			continue
		}
		out = append(out, ns)
	}
	return out
}

// processExists reports whether a process with this pid exists (any
// owner).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// validPrefix reports whether p is a usable namespace prefix.
func validPrefix(p string) bool {
	if p == "" || len(p) > MaxPrefixLen {
		return false
	}
	for i, c := range []byte(p) {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter || !letter && c != '_' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Hosts returns the host names of the testbed: "lan", "cli", "rtr" if it
// has a router, the switches ("sw", then "sw2" to "swN"), then "be1" to
// "beN", then "atk" if the testbed has its attacker host.
func (tb *Testbed) Hosts() []string {
	hosts := []string{"lan", "cli"}
	if tb.routed {
		hosts = append(hosts, "rtr")
	}
	for i := 1; i <= tb.Switches; i++ {
		hosts = append(hosts, SwitchHost(i))
	}
	for i := 1; i <= tb.Backends; i++ {
		hosts = append(hosts, "be"+strconv.Itoa(i))
	}
	if tb.attacker.Load() {
		hosts = append(hosts, "atk")
	}
	return hosts
}

// backendIndex returns N for a host "beN" with 1 <= N <= max, else 0.
func backendIndex(host string, max int) int {
	return hostIndex(host, "be", max)
}

// switchIndex returns 1 for the host "sw" and N for a host "swN" with
// 2 <= N <= max, else 0.
func switchIndex(host string, max int) int {
	if host == "sw" {
		return 1
	}
	if i := hostIndex(host, "sw", max); i >= 2 {
		return i
	}
	return 0
}

// hostIndex returns N for a host named kind followed by N, with
// 1 <= N <= max and no leading zero, else 0.
func hostIndex(host, kind string, max int) int {
	num, ok := strings.CutPrefix(host, kind)
	if !ok || num == "" || num[0] == '0' {
		return 0
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > max {
		return 0
	}
	return n
}

// NS returns the full namespace name of host ("lan", "cli", "rtr", "sw",
// "sw2" ..., "be1" ..., "atk"), or "" if the testbed has no such host.
func (tb *Testbed) NS(host string) string {
	switch host {
	case "lan", "cli":
	case "rtr":
		if !tb.routed {
			return ""
		}
	case "atk":
		if !tb.attacker.Load() {
			return ""
		}
	default:
		if backendIndex(host, tb.Backends) == 0 && switchIndex(host, tb.Switches) == 0 {
			return ""
		}
	}
	return tb.Prefix + "-" + host
}

// IP returns the address of host: its LAN address, or for the client of a
// routed testbed its address behind the router (RoutedClientIP); "" for
// "lan" and unknown hosts.
func (tb *Testbed) IP(host string) string {
	switch host {
	case "cli":
		if tb.routed {
			return RoutedClientIP
		}
		return ClientIP
	case "rtr":
		if tb.routed {
			return RouterIP
		}
		return ""
	case "atk":
		if tb.attacker.Load() {
			return AttackerIP
		}
		return ""
	}
	if i := backendIndex(host, tb.Backends); i > 0 {
		return BackendIP(i)
	}
	if i := switchIndex(host, tb.Switches); i > 0 {
		return SwitchAddr(i)
	}
	return ""
}

// Routed reports whether the testbed has a router with the client behind
// it.
func (tb *Testbed) Routed() bool { return tb.routed }

// addNamespace creates the namespace of host, records it as owned, brings lo
// up and turns IPv6 off so that the LAN carries no IPv6 chatter.
func (tb *Testbed) addNamespace(host string) error {
	ns := tb.NS(host)
	if _, err := run("ip", "netns", "add", ns); err != nil {
		return err
	}
	tb.mu.Lock()
	tb.owned = append(tb.owned, ns)
	tb.mu.Unlock()
	if _, err := run("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	return tb.sysctl(host,
		"net.ipv6.conf.all.disable_ipv6", "1",
		"net.ipv6.conf.default.disable_ipv6", "1")
}

// bridgeWithoutNetfilter makes br0 a plain layer-2 bridge: where
// br_netfilter is loaded, new namespaces pass bridged frames through
// iptables, arptables and ip6tables by default.
func (tb *Testbed) bridgeWithoutNetfilter() error {
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		return nil // no br_netfilter
	}
	return tb.sysctl("lan",
		"net.bridge.bridge-nf-call-iptables", "0",
		"net.bridge.bridge-nf-call-arptables", "0",
		"net.bridge.bridge-nf-call-ip6tables", "0")
}

// steerFlows turns on RPS for a veth end: its received frames are spread
// over all CPUs by flow hash, as a real NIC's RSS does, so one connection's
// frames stay on one CPU. Without it, a sender whose segments leave from two
// CPUs (its own thread and the softirq of its ACKs) has them reordered on
// the way; a receiver with a microsecond RTT then counts spurious fast
// retransmissions (seen here on direct traffic too).
func steerFlows(ns, dev string) error {
	mask := fmt.Sprintf("%x", uint64(1)<<min(runtime.NumCPU(), 63)-1)
	path := "/sys/class/net/" + dev + "/queues/rx-0/rps_cpus"
	_, err := run("ip", "netns", "exec", ns, "sh", "-c", "echo "+mask+" > "+path)
	return err
}

// addHost connects host to the bridge, or the client of a routed testbed
// to the router, and configures it for its role.
func (tb *Testbed) addHost(host string) error {
	if host == "cli" && tb.routed {
		return tb.addRoutedClient()
	}
	ns, ip := tb.NS(host), tb.IP(host)
	if err := tb.link("lan", host, host, "eth0"); err != nil {
		return err
	}
	if err := runAll([]string{"ip", "-n", tb.NS("lan"), "link", "set", host, "master", "br0", "up"}); err != nil {
		return err
	}
	backend := backendIndex(host, tb.Backends) > 0
	switch {
	case switchIndex(host, tb.Switches) > 0:
		err := tb.sysctl(host, "net.ipv4.ip_forward", "0")
		if err != nil {
			return err
		}
	case backend:
		// Before the VIP exists, so that it is never answered for.
		err := tb.sysctl(host,
			"net.ipv4.conf.all.arp_ignore", "1",
			"net.ipv4.conf.all.arp_announce", "2",
			"net.ipv4.conf.eth0.arp_ignore", "1",
			"net.ipv4.conf.eth0.arp_announce", "2")
		if err != nil {
			return err
		}
	case host == "rtr":
		if err := tb.routerSysctls(); err != nil {
			return err
		}
	}
	cmds := [][]string{
		{"ip", "-n", ns, "addr", "add", ip + "/" + lanBits, "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		tb.connectedRoute(host, LAN, "eth0", ip),
	}
	if backend {
		cmds = append(cmds, []string{"ip", "-n", ns, "addr", "add", VIP + "/32", "dev", "lo"})
	}
	if tb.routed && host != "rtr" {
		// The back-ends' responses from the VIP to the client go through
		// the router, and so do the other hosts' packets to it.
		cmds = append(cmds, []string{"ip", "-n", ns, "route", "replace", ClientNet, "via", RouterIP,
			"dev", "eth0", "congctl", tb.CongestionControl})
	}
	if host == "cli" {
		cmds = append(cmds, tb.clientOffloads()...)
	}
	return runAll(cmds...)
}

// addRoutedClient links the client's eth0 to the router's eth1 on
// ClientNet, with the client's default route through the router.
func (tb *Testbed) addRoutedClient() error {
	if err := tb.link("rtr", "eth1", "cli", "eth0"); err != nil {
		return err
	}
	// The router forwards from the back-ends' VIP, an address of its other
	// side: no reverse-path filter (routerSysctls sets all and default).
	if err := tb.sysctl("rtr", "net.ipv4.conf.eth1.rp_filter", "0"); err != nil {
		return err
	}
	rtr, cli := tb.NS("rtr"), tb.NS("cli")
	cmds := [][]string{
		{"ip", "-n", rtr, "addr", "add", RouterClientIP + "/24", "dev", "eth1"},
		{"ip", "-n", rtr, "link", "set", "eth1", "up"},
		tb.connectedRoute("rtr", ClientNet, "eth1", RouterClientIP),
		{"ip", "-n", cli, "addr", "add", RoutedClientIP + "/24", "dev", "eth0"},
		{"ip", "-n", cli, "link", "set", "eth0", "up"},
		tb.connectedRoute("cli", ClientNet, "eth0", RoutedClientIP),
		{"ip", "-n", cli, "route", "replace", "default", "via", RouterClientIP, "dev", "eth0",
			"congctl", tb.CongestionControl},
	}
	return runAll(append(cmds, tb.clientOffloads()...)...)
}

// link makes a veth pair from interface dev1 in the namespace of host1 to
// dev2 in that of host2, with RPS on both ends (steerFlows).
func (tb *Testbed) link(host1, dev1, host2, dev2 string) error {
	ns1, ns2 := tb.NS(host1), tb.NS(host2)
	if _, err := run("ip", "-n", ns1, "link", "add", dev1, "type", "veth", "peer", "name", dev2, "netns", ns2); err != nil {
		return err
	}
	if err := steerFlows(ns1, dev1); err != nil {
		return err
	}
	return steerFlows(ns2, dev2)
}

// connectedRoute returns the command that replaces the kernel's route to
// subnet, on host's dev whose address is src, with one that sets the
// testbed's congestion control.
func (tb *Testbed) connectedRoute(host, subnet, dev, src string) []string {
	return []string{"ip", "-n", tb.NS(host), "route", "replace", subnet, "dev", dev, "proto", "kernel", "scope", "link",
		"src", src, "congctl", tb.CongestionControl}
}

// clientOffloads returns the commands that turn the client's offloads off,
// none if they stay on.
func (tb *Testbed) clientOffloads() [][]string {
	if tb.ClientOffloads {
		return nil
	}
	return [][]string{{"ip", "netns", "exec", tb.NS("cli"),
		"ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off", "gro", "off"}}
}

// AddAttacker adds the host "atk" to a running testbed: a namespace on the
// LAN with eth0 at AttackerIP and no role in the installation, from which
// tests send hostile traffic (SYN floods, spoofed sources). Down deletes it
// with the others, also when AddAttacker failed half-way. It returns
// ErrAttacker if the testbed has it already and ErrDown after Down.
func (tb *Testbed) AddAttacker() error {
	tb.mu.Lock()
	down := tb.down
	tb.mu.Unlock()
	if down {
		return ErrDown
	}
	if !tb.attacker.CompareAndSwap(false, true) {
		return ErrAttacker
	}
	if err := tb.addNamespace("atk"); err != nil {
		return err
	}
	return tb.addHost("atk")
}

// Attach returns a Testbed for the namespaces named prefix-lan, prefix-cli,
// prefix-rtr, prefix-sw, prefix-swN, prefix-beN and prefix-atk that exist
// now, typically made by Up (and AddAttacker) in another process. Down
// deletes exactly those, and stops the processes in prefix-rtr (the
// router's daemon). Attach finds nothing to delete (and returns no error)
// when none exist. Router is read from the files in RouterDir;
// CongestionControl is left empty and ClientOffloads true, since neither
// is recorded.
func Attach(prefix string) (*Testbed, error) {
	if !validPrefix(prefix) {
		return nil, fmt.Errorf("%w: %q", ErrBadPrefix, prefix)
	}
	existing, err := listNamespaces()
	if err != nil {
		return nil, err
	}
	tb := &Testbed{Prefix: prefix, Switches: 1, ClientOffloads: true}
	// Back-ends and switches first, so that NS knows all of them.
	for ns := range existing {
		host, ok := strings.CutPrefix(ns, prefix+"-")
		if !ok {
			continue
		}
		tb.Backends = max(tb.Backends, backendIndex(host, MaxBackends))
		tb.Switches = max(tb.Switches, switchIndex(host, MaxSwitches))
	}
	tb.attacker.Store(existing[prefix+"-atk"])
	tb.routed = existing[prefix+"-rtr"]
	if tb.routed {
		tb.Router = routerOf(RouterDir(prefix))
	}
	for _, h := range tb.Hosts() {
		if ns := tb.NS(h); existing[ns] {
			tb.owned = append(tb.owned, ns)
		}
	}
	return tb, nil
}

// Namespaces returns the namespaces this Testbed will delete on Down.
func (tb *Testbed) Namespaces() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.owned...)
}

// Describe returns one paragraph describing the testbed.
func (tb *Testbed) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Testbed %s: namespaces %s (bridge br0, no bridge netfilter), %s (client %s)",
		tb.Prefix, tb.NS("lan"), tb.NS("cli"), tb.IP("cli"))
	if tb.routed {
		router := tb.Router
		if router == "" {
			router = "its routing daemon"
		}
		fmt.Fprintf(&b, ", %s (router %s, %s on %s; ip_forward=1, L4 multipath hash, rp_filter off; %s: BGP AS %d with each switch as AS %d, VIP/32 only, ECMP, BFD 300 ms x 3 with switches that run it)",
			tb.NS("rtr"), RouterIP, RouterClientIP, ClientNet, router, RouterAS, SwitchAS)
	}
	for i := 1; i <= tb.Switches; i++ {
		fmt.Fprintf(&b, ", %s (switch %s, ip_forward=0, VIP not configured)", tb.NS(SwitchHost(i)), SwitchAddr(i))
	}
	for i := 1; i <= tb.Backends; i++ {
		host := "be" + strconv.Itoa(i)
		fmt.Fprintf(&b, ", %s (back-end %s)", tb.NS(host), BackendIP(i))
	}
	if tb.attacker.Load() {
		fmt.Fprintf(&b, ", %s (attacker %s)", tb.NS("atk"), AttackerIP)
	}
	if tb.routed {
		fmt.Fprintf(&b, "; LAN %s on eth0 in every host namespace but the client's, which is behind the router on %s, IPv6 off; VIP %s on the back-ends' lo with arp_ignore=1 and arp_announce=2, and their route to %s via %s. ",
			LAN, ClientNet, VIP, ClientNet, RouterIP)
	} else {
		fmt.Fprintf(&b, "; LAN %s on eth0 in every host namespace, IPv6 off; VIP %s on the back-ends' lo with arp_ignore=1 and arp_announce=2. ", LAN, VIP)
	}
	if tb.CongestionControl != "" {
		fmt.Fprintf(&b, "Congestion control: %s (congctl on every LAN route and the client's routes). ", tb.CongestionControl)
	} else {
		b.WriteString("Congestion control: not known (attached testbed). ")
	}
	if tb.ClientOffloads {
		b.WriteString("Client offloads: veth defaults (partial checksums and TSO super-frames reach the switch).")
	} else {
		b.WriteString("Client offloads: off (tx checksumming, TSO, GSO and GRO disabled on the client's eth0).")
	}
	return b.String()
}

// Down stops every process started with Start (SIGTERM to its process group,
// SIGKILL after 2 s, and waits for it), then deletes the namespaces this
// Testbed owns. It is idempotent and safe to call from several goroutines,
// including a signal handler's; later calls to Start fail with ErrDown.
func (tb *Testbed) Down() error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.down = true
	var wg sync.WaitGroup
	for _, p := range tb.procs {
		// The exit status of a process is not Down's failure.
		wg.Go(func() { p.stop(downGrace) })
	}
	wg.Wait()
	tb.procs = nil
	if tb.routed {
		// An attached Testbed did not start the router's daemon.
		stopNamespaceProcs(tb.NS("rtr"), downGrace)
		defer os.RemoveAll(RouterDir(tb.Prefix))
	}
	if len(tb.owned) == 0 {
		return nil
	}
	existing, err := listNamespaces()
	if err != nil {
		return err
	}
	var errs []error
	var left []string
	for i := len(tb.owned) - 1; i >= 0; i-- {
		ns := tb.owned[i]
		if !existing[ns] {
			continue
		}
		if _, err := run("ip", "netns", "delete", ns); err != nil {
			errs = append(errs, err)
			left = append([]string{ns}, left...)
		}
	}
	tb.owned = left
	return errors.Join(errs...)
}

// listNamespaces returns the names of the namespaces in "ip netns list".
func listNamespaces() (map[string]bool, error) {
	out, err := run("ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	return parseNetnsList(out), nil
}

// parseNetnsList parses "ip netns list" output: one namespace a line, the
// name first, optionally followed by "(id: N)".
func parseNetnsList(out string) map[string]bool {
	names := make(map[string]bool)
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 {
			names[f[0]] = true
		}
	}
	return names
}

// run runs a command to completion and returns its combined output; the
// error names the command and includes the output.
func run(name string, args ...string) (string, error) {
	return output(exec.Command(name, args...))
}

// runAll runs commands in order and stops at the first error.
func runAll(cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := run(c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// output runs cmd and returns its combined output, with an error naming the
// command and including the output.
func output(cmd *exec.Cmd) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("testbed: %s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
