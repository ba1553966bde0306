package testbed

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// birdDaemon runs BIRD 2 as the router's daemon: one process, "bird -f",
// with its configuration (BIRDConfig), control socket and log in
// RouterDir.
type birdDaemon struct{}

func (birdDaemon) missing() error {
	for _, c := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("testbed: Router %q needs the %s command (Debian package bird2): %w", RouterBIRD, c, err)
		}
	}
	return nil
}

func (birdDaemon) start(tb *Testbed) ([]*Proc, error) {
	dir := RouterDir(tb.Prefix)
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(BIRDConfig(tb.Switches)), 0o600); err != nil {
		return nil, fmt.Errorf("testbed: router configuration: %w", err)
	}
	p, err := tb.start("rtr", filepath.Join(dir, "bird.log"), tb.detach, "bird", "-f", "-c", conf, "-s", tb.BIRDSocket())
	if err != nil {
		return nil, err
	}
	return []*Proc{p}, nil
}

func (birdDaemon) bgpSessions(tb *Testbed) ([]BGPSession, error) {
	out, err := tb.Birdc("show", "protocols")
	if err != nil {
		return nil, err
	}
	return parseBIRDProtocols(out)
}

func (birdDaemon) bfdSessions(tb *Testbed) (map[string]string, error) {
	out, err := tb.Birdc("show", "bfd", "sessions")
	if err != nil {
		return nil, err
	}
	return parseBFDSessions(out), nil
}

func (birdDaemon) status(tb *Testbed) string {
	return "birdc -s " + tb.BIRDSocket() + " show protocols"
}

// BIRDConfig returns the configuration of the testbed's router for this
// many switches: one BGP session a switch, named "sw1" to "swN", each
// importing the VIP/32 alone and exporting nothing, and a kernel protocol
// that merges the equal routes into one ECMP route (merge paths), with
// BFD on every session and no graceful restart (a switch's routes must go
// with its session, even if it offers to restart gracefully). BIRD connects after 1 s and retries every second;
// after a session fails it waits 1 to 2 s before it connects or accepts
// again (its default waits at least a minute, which would keep a
// restarted switch out).
func BIRDConfig(switches int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# The router of a webswitch testbed, written by bench/testbed.
log stderr all;
router id %[1]s;
timeformat protocol "%%T";
debug protocols { states, routes, events };

filter vip_only {
	if net = %[2]s/32 then accept;
	reject;
}

protocol device {
}

protocol kernel {
	ipv4 {
		import none;
		export filter vip_only;
	};
	merge paths on;
}

protocol bfd {
	interface "eth0" {
		interval 300 ms;
		multiplier 3;
	};
}

template bgp switch {
	local %[1]s as %[3]d;
	connect delay time 1;
	connect retry time 1;
	error wait time 1, 2;
	graceful restart off;
	bfd on;
	ipv4 {
		import filter vip_only;
		export none;
	};
}
`, RouterIP, VIP, RouterAS)
	for i := 1; i <= switches; i++ {
		fmt.Fprintf(&b, "\nprotocol bgp sw%d from switch {\n\tneighbor %s as %d;\n}\n", i, SwitchAddr(i), SwitchAS)
	}
	return b.String()
}

// BIRDSocket returns the path of BIRD's control socket, for birdc -s.
func (tb *Testbed) BIRDSocket() string { return filepath.Join(RouterDir(tb.Prefix), "bird.ctl") }

// Birdc runs birdc on the router's control socket with args ("show",
// "protocols") and returns its output.
func (tb *Testbed) Birdc(args ...string) (string, error) {
	if !tb.routed || tb.Router != RouterBIRD {
		return "", fmt.Errorf("%w running BIRD", ErrNotRouted)
	}
	return run("birdc", append([]string{"-s", tb.BIRDSocket()}, args...)...)
}

// parseBIRDProtocols reads the BGP protocols named "swN" from the output
// of "birdc show protocols": a line a protocol, "Name Proto Table State
// Since Info", where Since is one word (timeformat protocol "%T") and Info
// starts with the BGP state. Other lines are skipped.
func parseBIRDProtocols(out string) ([]BGPSession, error) {
	var sessions []BGPSession
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 4 || f[1] != "BGP" {
			continue
		}
		i := hostIndex(f[0], "sw", MaxSwitches)
		if i == 0 {
			continue
		}
		if len(f) < 5 {
			return nil, fmt.Errorf("%w: %q", errRouterOutput, strings.TrimSpace(line))
		}
		s := BGPSession{Switch: i, Name: f[0], State: f[3]}
		if len(f) > 5 {
			s.BGP, s.Info = f[5], strings.Join(f[6:], " ")
		}
		sessions = append(sessions, s)
	}
	slices.SortFunc(sessions, func(a, b BGPSession) int { return a.Switch - b.Switch })
	return sessions, nil
}

// parseBFDSessions reads the lines "IP address Interface State Since
// Interval Timeout" of "birdc show bfd sessions"; other lines are skipped.
func parseBFDSessions(out string) map[string]string {
	sessions := map[string]string{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= 3 && net.ParseIP(f[0]) != nil {
			sessions[f[0]] = f[2]
		}
	}
	return sessions
}
