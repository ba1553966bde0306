package testbed

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// frrDir is where Debian's frr package puts FRR's daemons.
const frrDir = "/usr/lib/frr/"

// frrDaemons are the FRR daemons the router runs, in starting order.
var frrDaemons = []string{"zebra", "bfdd", "bgpd"}

// frrDaemon runs FRR as the router's daemon: zebra (the kernel's routes),
// bfdd and bgpd, each in the foreground as the frr user, with their
// configurations (FRRConfig), vty sockets, zebra's socket and logs in
// RouterDir. vtysh --vty_socket RouterDir talks to them.
type frrDaemon struct{}

func (frrDaemon) missing() error {
	for _, d := range frrDaemons {
		if _, err := os.Stat(frrDir + d); err != nil {
			return fmt.Errorf("testbed: Router %q needs %s%s (Debian package frr): %w", RouterFRR, frrDir, d, err)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		return fmt.Errorf("testbed: Router %q needs the vtysh command (Debian package frr): %w", RouterFRR, err)
	}
	if _, err := user.Lookup("frr"); err != nil {
		return fmt.Errorf("testbed: Router %q needs the frr user (Debian package frr): %w", RouterFRR, err)
	}
	return nil
}

// FRRConfig returns the configuration files of the testbed's router with
// FRR for this many switches, by name: zebra.conf, bfdd.conf (a BFD
// profile of 300 ms x 3) and bgpd.conf: one BGP session a switch, in a
// peer group that imports the VIP/32 alone and exports nothing, with up
// to 8 equal paths in one ECMP route, BFD, a connection attempt every
// second, and no graceful restart (a switch's routes go with its session).
func FRRConfig(switches int) map[string]string {
	var neighbors strings.Builder
	for i := 1; i <= switches; i++ {
		fmt.Fprintf(&neighbors, " neighbor %s peer-group switches\n neighbor %s description sw%d\n", SwitchAddr(i), SwitchAddr(i), i)
	}
	return map[string]string{
		"zebra.conf": "hostname rtr\n",
		"bfdd.conf": `hostname rtr
bfd
 profile switches
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 exit
exit
`,
		"bgpd.conf": fmt.Sprintf(`hostname rtr
ip prefix-list vip seq 5 permit %[1]s/32
route-map vip-only permit 10
 match ip address prefix-list vip
exit
route-map nothing deny 10
exit
router bgp %[2]d
 bgp router-id %[3]s
 bgp graceful-restart-disable
 no bgp ebgp-requires-policy
 bgp bestpath as-path multipath-relax
 neighbor switches peer-group
 neighbor switches remote-as %[4]d
 neighbor switches timers connect 1
 neighbor switches bfd profile switches
%[5]s address-family ipv4 unicast
  neighbor switches route-map vip-only in
  neighbor switches route-map nothing out
  maximum-paths 8
 exit-address-family
exit
`, VIP, RouterAS, RouterIP, SwitchAS, neighbors.String()),
	}
}

func (frrDaemon) start(tb *Testbed) ([]*Proc, error) {
	dir := RouterDir(tb.Prefix)
	frr, err := user.Lookup("frr")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(frr.Uid)
	gid, _ := strconv.Atoi(frr.Gid)
	// The daemons write their pid files and sockets there as frr.
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, fmt.Errorf("testbed: router directory: %w", err)
	}
	for name, content := range FRRConfig(tb.Switches) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("testbed: router configuration: %w", err)
		}
	}
	zserv := filepath.Join(dir, "zserv.api")
	var procs []*Proc
	for _, d := range frrDaemons {
		p, err := tb.start("rtr", filepath.Join(dir, d+".log"), tb.detach, frrDir+d,
			"-f", filepath.Join(dir, d+".conf"), "-i", filepath.Join(dir, d+".pid"), "-z", zserv,
			"--vty_socket", dir, "-P", "0", "-u", "frr", "-g", "frr", "--log", "stdout")
		if err != nil {
			return procs, err
		}
		procs = append(procs, p)
		if d == "zebra" {
			// The others connect to zebra's socket as they start.
			err := poll(routerStartWait, func() (bool, string) {
				_, err := os.Stat(zserv)
				return err == nil, fmt.Sprintf("zebra's socket %s: %v", zserv, err)
			})
			if err != nil {
				return procs, err
			}
		}
	}
	return procs, nil
}

// Vtysh runs vtysh on the vty sockets of the router's FRR daemons with
// the command ("show bgp summary") and returns its output.
func (tb *Testbed) Vtysh(command string) (string, error) {
	if !tb.routed || tb.Router != RouterFRR {
		return "", fmt.Errorf("%w running FRR", ErrNotRouted)
	}
	return run("vtysh", "--vty_socket", RouterDir(tb.Prefix), "-c", command)
}

func (frrDaemon) bgpSessions(tb *Testbed) ([]BGPSession, error) {
	out, err := tb.Vtysh("show bgp summary json")
	if err != nil {
		return nil, err
	}
	return parseFRRSummary([]byte(out))
}

// parseFRRSummary reads the sessions with the switches from the output of
// "show bgp summary json". BIRD's protocol states stand for the BGP ones:
// "up" for Established, "down" for an administratively shut session,
// "start" for the others.
func parseFRRSummary(data []byte) ([]BGPSession, error) {
	var summary struct {
		IPv4Unicast struct {
			Peers map[string]struct {
				State     string `json:"state"`
				PeerState string `json:"peerState"`
			} `json:"peers"`
		} `json:"ipv4Unicast"`
	}
	if err := json.Unmarshal(data, &summary); err != nil {
		return nil, fmt.Errorf("%w: show bgp summary json: %v", errRouterOutput, err)
	}
	var sessions []BGPSession
	for i := 1; i <= MaxSwitches; i++ {
		peer, ok := summary.IPv4Unicast.Peers[SwitchAddr(i)]
		if !ok {
			continue
		}
		s := BGPSession{Switch: i, Name: "sw" + strconv.Itoa(i), State: "start", Info: peer.PeerState}
		s.BGP, _, _ = strings.Cut(peer.State, " ") // "Idle (Admin)"
		switch {
		case peer.State == "Established":
			s.State = "up"
		case strings.Contains(peer.State, "Admin"):
			s.State = "down"
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}

func (frrDaemon) bfdSessions(tb *Testbed) (map[string]string, error) {
	out, err := tb.Vtysh("show bfd peers json")
	if err != nil {
		return nil, err
	}
	return parseFRRBFDPeers([]byte(out))
}

// frrBFDStates maps FRR's BFD states to BIRD's words.
var frrBFDStates = map[string]string{"up": "Up", "down": "Down", "init": "Init", "shutdown": "AdminDown"}

// parseFRRBFDPeers reads the output of "show bfd peers json": a list of
// peers with their state.
func parseFRRBFDPeers(data []byte) (map[string]string, error) {
	var peers []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(data, &peers); err != nil {
		return nil, fmt.Errorf("%w: show bfd peers json: %v", errRouterOutput, err)
	}
	sessions := map[string]string{}
	for _, p := range peers {
		state, ok := frrBFDStates[p.Status]
		if !ok {
			state = p.Status
		}
		sessions[p.Peer] = state
	}
	return sessions, nil
}

func (frrDaemon) status(tb *Testbed) string {
	return "vtysh --vty_socket " + RouterDir(tb.Prefix) + " -c 'show bgp summary'"
}
