package failover

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"webswitch/bench/scenario"
	"webswitch/bench/testbed"
)

// The HAProxy pair's VRRP instance: its router id on the LAN, and the
// nodes' priorities (node 1, the switch host sw, is the master).
const (
	vrrpRouterID   = 51
	masterPriority = 150
	backupPriority = 100
)

// KeepalivedConfig returns keepalived's configuration for node i of the
// HAProxy pair (counting from 1: the testbed's switch hosts sw and sw2):
// one VRRP version 3 instance on eth0 holding the VIP, node 1 starting as
// master with priority 150, node 2 as backup with 100, adverts every
// advert. Preemption is keepalived's default (on); the bench never brings
// the dead master back, so it does not matter here. The VIP is added to
// eth0 as a /24, so that the master's kernel answers ARP for it and
// HAProxy, listening on every address, accepts its connections.
func KeepalivedConfig(i int, advert time.Duration) string {
	state, prio := "MASTER", masterPriority
	if i != 1 {
		state, prio = "BACKUP", backupPriority
	}
	return fmt.Sprintf(`global_defs {
    router_id %s
    vrrp_version 3
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 3
}
vrrp_instance vip {
    state %s
    interface eth0
    virtual_router_id %d
    priority %d
    advert_int %s
    virtual_ipaddress {
        %s/24 dev eth0
    }
}
`, testbed.SwitchHost(i), state, vrrpRouterID, prio, strconv.FormatFloat(advert.Seconds(), 'f', -1, 64), testbed.VIP)
}

// node is one HAProxy node: haproxy and keepalived in a switch host.
type node struct {
	host                string
	haproxy, keepalived *testbed.Proc
}

// startPair writes the pair's configurations under dir and starts
// haproxy (on port 80 of every address) and keepalived in the testbed's
// switch hosts sw and sw2.
func startPair(tb *testbed.Testbed, dir string, advert time.Duration) ([]*node, error) {
	nodes := make([]*node, 2)
	for i := range nodes {
		n := &node{host: testbed.SwitchHost(i + 1)}
		d := filepath.Join(dir, n.host)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		files := map[string]string{
			"haproxy.cfg":     scenario.HAProxyConfig(d, ":80"),
			"keepalived.conf": KeepalivedConfig(i+1, advert),
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
				return nil, err
			}
		}
		var err error
		if n.haproxy, err = tb.Start(n.host, filepath.Join(d, "haproxy.log"), "haproxy", "-db", "-f", filepath.Join(d, "haproxy.cfg")); err != nil {
			return nil, fmt.Errorf("haproxy: %w", err)
		}
		// In the foreground, logging to its stdout, with its own PID files
		// (the defaults in /run would clash between the nodes).
		if n.keepalived, err = tb.Start(n.host, filepath.Join(d, "keepalived.log"), "keepalived",
			"--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
			"--use-file", filepath.Join(d, "keepalived.conf"), "--pid", filepath.Join(d, "keepalived.pid"),
			"--vrrp_pid", filepath.Join(d, "vrrp.pid"), "--checkers_pid", filepath.Join(d, "checkers.pid")); err != nil {
			return nil, fmt.Errorf("keepalived: %w", err)
		}
		nodes[i] = n
	}
	return nodes, nil
}

// kill kills the node's haproxy and keepalived with SIGKILL at once, to
// their whole process groups (keepalived's VRRP child too, which would
// otherwise go on advertising), and waits until they are reaped.
func (n *node) kill() {
	for _, p := range []*testbed.Proc{n.haproxy, n.keepalived} {
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	}
	<-n.haproxy.Done()
	<-n.keepalived.Done()
}
