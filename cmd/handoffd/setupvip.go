package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"webswitch/conf"
)

// backendSysctls are set in this order, before the VIP exists, so that the
// host never answers ARP for it.
var backendSysctls = []struct{ name, value string }{
	{"net.ipv4.conf.all.arp_ignore", "1"},
	{"net.ipv4.conf.all.arp_announce", "2"},
}

// loopback is the interface the VIP goes on.
const loopback = "lo"

// ifaceAddr is an address of a network interface.
type ifaceAddr struct {
	iface  string
	prefix netip.Prefix
}

// backendHost is what setup-vip reads and changes on the host: systemHost
// for the real one, a fake in the unit tests.
type backendHost interface {
	sysctl(name string) (string, error)
	setSysctl(name, value string) error
	// addrs returns the IPv4 addresses of every interface.
	addrs() ([]ifaceAddr, error)
	// addLoopback adds p to the loopback interface.
	addLoopback(p netip.Prefix) error
}

// setupVIP runs "handoffd setup-vip", given the arguments after the
// subcommand's name, and returns the exit status. It prepares this host as
// a back-end, as for LVS direct routing:
//
//	handoffd setup-vip -config FILE | -vip ADDR
//
// First net.ipv4.conf.all.arp_ignore=1 (answer ARP only for addresses of the
// interface asked on: never for the VIP on lo) and arp_announce=2 (never use
// the VIP as the source of an ARP request), then the VIP as a /32 on lo, so
// that the kernel accepts the frames the switch forwards to it and the
// re-created sockets can bind it. The kernel applies the larger of the "all"
// and the interface's value for both sysctls, so "all" covers every
// interface. It is idempotent: each step prints what it changed, or "already
// set". It changes nothing when the VIP is already configured in a way that
// would break the back-end (on another interface, or on lo with another
// prefix length) and exits with status 1 on any failure, 2 on a usage or
// configuration error. It needs root (CAP_NET_ADMIN and write access to
// /proc/sys); the systemd unit runs it with ExecStartPre=+.
func setupVIP(args []string) int {
	fs := flag.NewFlagSet("handoffd setup-vip", flag.ContinueOnError)
	configPath := fs.String("config", "", "agent configuration `file` whose agent.vip to set up")
	vipFlag := fs.String("vip", "", "the VIP (IPv4 `address`), instead of -config's agent.vip")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: handoffd setup-vip -config FILE | -vip ADDR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (*configPath == "") == (*vipFlag == "") {
		fs.Usage()
		return 2
	}
	vip, err := resolveVIP(*configPath, *vipFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "handoffd setup-vip: %v\n", err)
		return 2
	}
	if err := prepareBackend(systemHost{}, vip, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "handoffd setup-vip: %v\n", err)
		return 1
	}
	return 0
}

// resolveVIP returns the VIP given with -vip, or the agent.vip of the
// configuration file.
func resolveVIP(configPath, vip string) (netip.Addr, error) {
	if configPath != "" {
		c, err := conf.LoadAgent(configPath)
		if err != nil {
			return netip.Addr{}, err
		}
		return c.Agent.VIP, nil
	}
	a, err := netip.ParseAddr(vip)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("-vip %q is not an IPv4 address", vip)
	}
	return a, nil
}

// prepareBackend sets the sysctls, then puts vip on the loopback interface,
// reporting each step on out. It checks the VIP's addresses first, and
// changes nothing when they conflict.
func prepareBackend(h backendHost, vip netip.Addr, out io.Writer) error {
	want := netip.PrefixFrom(vip, 32)
	addrs, err := h.addrs()
	if err != nil {
		return fmt.Errorf("reading the interfaces' addresses: %w", err)
	}
	haveVIP := false
	for _, a := range addrs {
		switch {
		case a.prefix.Addr() != vip:
		case a.iface != loopback:
			return fmt.Errorf("the VIP %v is configured on %s: a back-end must have it on %s only, or it answers ARP for it; remove it (ip addr del %v dev %s) and run setup-vip again",
				vip, a.iface, loopback, a.prefix, a.iface)
		case a.prefix != want:
			return fmt.Errorf("the VIP is on %s as %v, not %v: remove it (ip addr del %v dev %s) and run setup-vip again",
				loopback, a.prefix, want, a.prefix, loopback)
		default:
			haveVIP = true
		}
	}
	for _, s := range backendSysctls {
		old, err := h.sysctl(s.name)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if old == s.value {
			fmt.Fprintf(out, "%s = %s: already set\n", s.name, s.value)
			continue
		}
		if err := h.setSysctl(s.name, s.value); err != nil {
			return fmt.Errorf("%s = %s: %w", s.name, s.value, err)
		}
		fmt.Fprintf(out, "%s = %s: set (was %s)\n", s.name, s.value, old)
	}
	if haveVIP {
		fmt.Fprintf(out, "%v on %s: already set\n", want, loopback)
		return nil
	}
	if err := h.addLoopback(want); err != nil {
		return err
	}
	fmt.Fprintf(out, "%v on %s: added\n", want, loopback)
	return nil
}

// systemHost is this host: sysctls in /proc/sys, addresses read with the net
// package and added with the ip command (iproute2).
type systemHost struct{}

// sysctlPath returns the /proc/sys file of a sysctl name such as
// "net.ipv4.conf.all.arp_ignore".
func sysctlPath(name string) string {
	return "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
}

func (systemHost) sysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (systemHost) setSysctl(name, value string) error {
	err := os.WriteFile(sysctlPath(name), []byte(value+"\n"), 0o644)
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (setup-vip must run as root)", err)
	}
	return err
}

func (systemHost) addrs() ([]ifaceAddr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []ifaceAddr
	for _, ifi := range ifs {
		as, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ifi.Name, err)
		}
		for _, a := range as {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil {
				continue
			}
			ones, _ := ipn.Mask.Size()
			out = append(out, ifaceAddr{ifi.Name, netip.PrefixFrom(netip.AddrFrom4([4]byte(ipn.IP.To4())), ones)})
		}
	}
	return out, nil
}

func (systemHost) addLoopback(p netip.Prefix) error {
	cmd := exec.Command("ip", "addr", "add", p.String(), "dev", loopback)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}
