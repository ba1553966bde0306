package pktrate

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"webswitch/bench/testbed"
)

// paths are the files the flows fetch, in turn, so that they are spread over
// both back-ends. site.Start checks that both answer before it returns.
var paths = []string{"/static/", "/"}

// Limits of the set-up of the flows.
const (
	dialWorkers = 16               // connections being set up at once
	flowTimeout = 10 * time.Second // for one connection's request and response
)

// Repair queue selectors for TCP_REPAIR_QUEUE (linux/tcp.h); x/sys/unix does
// not define them.
const (
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// flow is one established client connection held for the replay.
type flow struct {
	conn     *net.TCPConn
	repaired bool // in repair mode: its kernel sends nothing
}

// dialFlows opens n connections to the VIP from the client namespace; each
// fetches one file over keep-alive, reads the whole response and stays open.
// On error it closes the connections it opened.
func dialFlows(tb *testbed.Testbed, n int) ([]flow, error) {
	flows := make([]flow, n)
	workers := min(n, dialWorkers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		// Each worker has its own thread in the client namespace: sockets
		// are made in the namespace of the thread that creates them.
		wg.Go(func() {
			errs[w] = tb.Do("cli", func() error {
				for i := w; i < n; i += workers {
					c, err := fetch(paths[i%len(paths)])
					if err != nil {
						return fmt.Errorf("pktrate: flow %d: %w", i, err)
					}
					flows[i].conn = c
				}
				return nil
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeFlows(flows)
		return nil, err
	}
	return flows, nil
}

// fetch connects to the VIP on port 80, gets path, reads the whole response
// and returns the open connection.
func fetch(path string) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(testbed.VIP, "80"), flowTimeout)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	if err := get(tc, path); err != nil {
		tc.Close()
		return nil, err
	}
	return tc, nil
}

// get sends one keep-alive GET for path on c and reads the whole response.
func get(c *net.TCPConn, path string) error {
	if err := c.SetDeadline(time.Now().Add(flowTimeout)); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, testbed.VIP); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.Close {
		return fmt.Errorf("GET %s: %s (close %v)", path, resp.Status, resp.Close)
	}
	return c.SetDeadline(time.Time{})
}

// repair puts the flow's socket into repair mode, so that its kernel sends
// nothing while the replay runs, and returns its snd_nxt and rcv_nxt.
func (f *flow) repair() (snd, rcv uint32, err error) {
	err = f.control(func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
			return fmt.Errorf("pktrate: TCP_REPAIR on: %w", err)
		}
		f.repaired = true
		var err error
		if snd, err = queueSeq(fd, tcpSendQueue); err != nil {
			return err
		}
		rcv, err = queueSeq(fd, tcpRecvQueue)
		return err
	})
	return snd, rcv, err
}

// queueSeq returns the next sequence number of a queue of a socket in repair
// mode: write_seq (all sent, on an idle connection: snd_nxt) for the send
// queue, rcv_nxt for the receive queue.
func queueSeq(fd, queue int) (uint32, error) {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return 0, fmt.Errorf("pktrate: TCP_REPAIR_QUEUE %d: %w", queue, err)
	}
	v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return 0, fmt.Errorf("pktrate: TCP_QUEUE_SEQ of queue %d: %w", queue, err)
	}
	return uint32(v), nil
}

// control runs fn on the flow's socket descriptor.
func (f *flow) control(fn func(fd int) error) error {
	rc, err := f.conn.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// localPort returns the client port of the flow.
func (f *flow) localPort() uint16 {
	return uint16(f.conn.LocalAddr().(*net.TCPAddr).Port)
}

// closeFlows takes the sockets out of repair mode and closes them: each
// ends with a FIN, as a client's would.
func closeFlows(flows []flow) error {
	var errs []error
	for i := range flows {
		f := &flows[i]
		if f.conn == nil {
			continue
		}
		if f.repaired {
			errs = append(errs, f.control(func(fd int) error {
				return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF)
			}))
		}
		errs = append(errs, f.conn.Close())
		f.conn = nil
	}
	return errors.Join(errs...)
}

// NeighbourMAC returns the MAC address the namespace of host has in its
// neighbour table for ip on eth0: for the VIP, the switch's, which answers
// ARP for it. The entry must exist: something must have been sent to ip.
func NeighbourMAC(tb *testbed.Testbed, host, ip string) ([6]byte, error) {
	out, err := tb.Run(host, "ip", "-j", "neigh", "show", "to", ip, "dev", "eth0")
	if err != nil {
		return [6]byte{}, err
	}
	var entries []struct {
		LLAddr string `json:"lladdr"`
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		return [6]byte{}, fmt.Errorf("pktrate: ip neigh output %q: %w", out, err)
	}
	for _, e := range entries {
		if mac, err := net.ParseMAC(e.LLAddr); err == nil && len(mac) == 6 {
			return [6]byte(mac), nil
		}
	}
	return [6]byte{}, fmt.Errorf("pktrate: %s has no neighbour entry for %s: %q", tb.NS(host), ip, out)
}
