package recovery

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"webswitch/bench/testbed"
	"webswitch/handoff/agent"
)

// fdSpare is how many descriptors the process keeps beyond its held
// connections (the rings, the scrapes, the Go runtime's).
const fdSpare = 4096

// held are the connections of a run: sockets of this process that live in
// the back-ends' namespaces, re-created with TCP_REPAIR exactly as
// handoffd re-creates a handed-off connection (agent.Recreate), for
// clients that never made them. Connection i lives on back-end
// i%agents+1.
type held struct {
	conns  []*net.TCPConn // by connection index
	agents int
}

// backendOf returns the testbed host of connection i's back-end.
func (h *held) backendOf(i int) string { return "be" + strconv.Itoa(i%h.agents+1) }

// hold re-creates connections 0 to n-1 on the first agents back-ends,
// one goroutine per back-end, each on a thread in its namespace. It
// raises this process's limit of open files as needed. On error it
// closes what it made.
func hold(tb *testbed.Testbed, n, agents int) (*held, error) {
	if err := raiseNoFile(uint64(n + fdSpare)); err != nil {
		return nil, err
	}
	h := &held{conns: make([]*net.TCPConn, n), agents: agents}
	errs := make([]error, agents)
	var wg sync.WaitGroup
	for b := range agents {
		wg.Go(func() {
			errs[b] = tb.Do(h.backendOf(b), func() error {
				for i := b; i < n; i += agents {
					st := connState(i)
					c, err := agent.Recreate(&st, nil)
					if err != nil {
						return fmt.Errorf("recovery: connection %d (%s): %w", i, st.Client, err)
					}
					h.conns[i] = c.(*net.TCPConn) // Recreate makes a *net.TCPConn
				}
				return nil
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// pending returns the connections whose socket still has its one byte
// outstanding: no ACK of theirs was forwarded to it.
func (h *held) pending() ([]int, error) {
	var out []int
	for i, c := range h.conns {
		rc, err := c.SyscallConn()
		if err != nil {
			return nil, err
		}
		var info *unix.TCPInfo
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		}); err != nil {
			return nil, err
		}
		if gerr != nil {
			return nil, fmt.Errorf("recovery: TCP_INFO of connection %d: %w", i, gerr)
		}
		if info.Unacked > 0 {
			out = append(out, i)
		}
	}
	return out, nil
}

// close resets every connection (SO_LINGER 0: no FIN to retransmit to
// clients that do not exist) and frees its socket.
func (h *held) close() {
	for i, c := range h.conns {
		if c != nil {
			c.SetLinger(0)
			c.Close()
			h.conns[i] = nil
		}
	}
}

// raiseNoFile raises this process's soft limit of open files to n, and
// the hard limit with it if needed (root may).
func raiseNoFile(n uint64) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("recovery: getrlimit NOFILE: %w", err)
	}
	if lim.Cur >= n {
		return nil
	}
	lim.Cur, lim.Max = n, max(lim.Max, n)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("recovery: setrlimit NOFILE to %d: %w", n, err)
	}
	return nil
}

// memInfo is what a run reports of the machine's memory, in bytes.
type memInfo struct {
	available, slab uint64
}

// readMemInfo reads MemAvailable and Slab from /proc/meminfo.
func readMemInfo() (memInfo, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return memInfo{}, err
	}
	return parseMemInfo(string(b))
}

// parseMemInfo parses the text of /proc/meminfo for memInfo.
func parseMemInfo(text string) (memInfo, error) {
	var m memInfo
	found := 0
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		var dst *uint64
		switch f[0] {
		case "MemAvailable:":
			dst = &m.available
		case "Slab:":
			dst = &m.slab
		default:
			continue
		}
		kb, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return m, fmt.Errorf("recovery: /proc/meminfo line %q: %w", strings.TrimSpace(line), err)
		}
		*dst = kb << 10
		found++
	}
	if found != 2 {
		return m, errors.New("recovery: /proc/meminfo lacks MemAvailable or Slab")
	}
	return m, nil
}
