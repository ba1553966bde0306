package recovery

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"webswitch/bench/procstat"
	"webswitch/bench/testbed"
	"webswitch/handoff/agent"
)

// The connections of a run are sockets in the back-ends' namespaces,
// re-created with TCP_REPAIR exactly as handoffd re-creates a handed-off
// connection (agent.Recreate), for clients that never made them.
// Connection i lives on back-end i%agents+1. A process may hold only so
// many (its RLIMIT_NOFILE, which needs CAP_SYS_RESOURCE to raise, and
// this workplace does not have it), so they are held by holder processes,
// each started in a back-end's namespace (Hold: the hidden subcommand
// "wsbench recovery-hold"), each with at most holderMax of them and
// talking to Run over its standard input and output:
//
//	holder: "ready" once it made its connections ("error: ..." instead,
//	        then it exits 1)
//	Run:    "pending"  holder: "pending I I I ..." (the connections whose
//	                   socket still has its byte outstanding)
//	Run:    "close", or end of input: it resets its connections and exits
const (
	holderSpare = 1024             // descriptors a holder keeps for itself
	holderMax   = 1 << 16          // connections a holder holds at most
	holderStop  = 10 * time.Second // for a holder to exit once told
)

// Holder protocol words.
const (
	holdReady   = "ready"
	holdError   = "error: "
	holdPending = "pending"
	holdClose   = "close"
)

// holder is one holder process, seen from Run.
type holder struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	// The connections it holds: first, first+step, ... (count of them).
	first, step, count int
}

// held are a run's connections, in their holders.
type held struct {
	holders []*holder
}

// hold starts holders that re-create connections 0 to n-1 on the first
// agents back-ends and waits until all are made. cmd is the command that
// runs Hold (the program and its arguments before Hold's). On error it
// stops what it started.
func hold(tb *testbed.Testbed, cmd []string, n, agents int) (*held, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil, fmt.Errorf("recovery: getrlimit NOFILE: %w", err)
	}
	per := int(min(lim.Max-holderSpare, holderMax)) // holders inherit the hard limit
	h := &held{}
	for b := range agents {
		mine := (n - b + agents - 1) / agents // connections b, b+agents, ... below n
		for k := 0; k < mine; k += per {
			hd := &holder{first: b + k*agents, step: agents, count: min(per, mine-k)}
			if err := hd.start(tb, "be"+strconv.Itoa(b+1), cmd); err != nil {
				h.close()
				return nil, err
			}
			h.holders = append(h.holders, hd)
		}
	}
	errs := make([]error, len(h.holders))
	var wg sync.WaitGroup
	for i, hd := range h.holders {
		wg.Go(func() { errs[i] = hd.ready() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// start starts the holder in the namespace of host.
func (hd *holder) start(tb *testbed.Testbed, host string, cmd []string) error {
	args := append(cmd[1:len(cmd):len(cmd)], "-first", strconv.Itoa(hd.first), "-step", strconv.Itoa(hd.step), "-count", strconv.Itoa(hd.count))
	hd.cmd = tb.Command(host, cmd[0], args...)
	hd.cmd.Stderr = os.Stderr
	var err error
	if hd.in, err = hd.cmd.StdinPipe(); err != nil {
		return err
	}
	out, err := hd.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	hd.out = bufio.NewReaderSize(out, 1<<16)
	if err := hd.cmd.Start(); err != nil {
		return fmt.Errorf("recovery: start a holder: %w", err)
	}
	return nil
}

// ready waits for the holder's first line.
func (hd *holder) ready() error {
	line, err := hd.out.ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == holdReady:
		return nil
	case strings.HasPrefix(line, holdError):
		return fmt.Errorf("recovery: holder of connections %d+%d*k: %s", hd.first, hd.step, strings.TrimPrefix(line, holdError))
	default:
		return fmt.Errorf("recovery: holder of connections %d+%d*k said %q, %v", hd.first, hd.step, line, err)
	}
}

// pending returns the connections whose socket still has its one byte
// outstanding: no ACK of theirs was forwarded to it.
func (h *held) pending() ([]int, error) {
	lists := make([][]int, len(h.holders))
	errs := make([]error, len(h.holders))
	var wg sync.WaitGroup
	for i, hd := range h.holders {
		wg.Go(func() { lists[i], errs[i] = hd.pending() })
	}
	wg.Wait()
	var out []int
	for _, l := range lists {
		out = append(out, l...)
	}
	return out, errors.Join(errs...)
}

// pending asks the holder for its pending connections.
func (hd *holder) pending() ([]int, error) {
	if _, err := io.WriteString(hd.in, holdPending+"\n"); err != nil {
		return nil, fmt.Errorf("recovery: holder: %w", err)
	}
	line, err := hd.out.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("recovery: holder: %w", err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != holdPending {
		return nil, fmt.Errorf("recovery: holder answered %q to %s", strings.TrimSpace(line), holdPending)
	}
	out := make([]int, 0, len(f)-1)
	for _, s := range f[1:] {
		i, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("recovery: holder answered %q to %s", strings.TrimSpace(line), holdPending)
		}
		out = append(out, i)
	}
	return out, nil
}

// rss returns the holders' resident memory together, in bytes.
func (h *held) rss() (int64, error) {
	var sum int64
	for _, hd := range h.holders {
		n, err := procstat.RSS(hd.cmd.Process.Pid)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// close tells every holder to reset its connections and exit, and waits;
// one that has not exited within holderStop is killed (by its PID).
func (h *held) close() {
	var wg sync.WaitGroup
	for _, hd := range h.holders {
		wg.Go(func() {
			io.WriteString(hd.in, holdClose+"\n")
			hd.in.Close()
			done := make(chan struct{})
			go func() {
				hd.cmd.Wait()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(holderStop):
				hd.cmd.Process.Kill()
				<-done
			}
		})
	}
	wg.Wait()
	h.holders = nil
}

// Hold is a holder (see above): it re-creates connections first,
// first+step, ... (count of them) in this process's network namespace,
// says so on out, and answers the commands it reads from in until told to
// close or in ends. args are its flags: -first, -step, -count.
func Hold(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("recovery-hold", flag.ContinueOnError)
	first := fs.Int("first", 0, "first connection")
	step := fs.Int("step", 1, "between two connections")
	count := fs.Int("count", 0, "connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *first < 0 || *step < 1 || *count < 1 || checkFlows(*first+(*count-1)**step+1) != nil {
		return fmt.Errorf("%w: holder of %d connections from %d by %d", ErrConfig, *count, *first, *step)
	}
	w := bufio.NewWriterSize(out, 1<<16)
	conns, err := recreate(*first, *step, *count)
	defer closeConns(conns)
	if err != nil {
		fmt.Fprintf(w, "%s%v\n", holdError, err)
		w.Flush()
		return err
	}
	fmt.Fprintln(w, holdReady)
	if err := w.Flush(); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case holdPending:
			w.WriteString(holdPending)
			for k, c := range conns {
				p, err := outstanding(c)
				if err != nil {
					return err
				}
				if p {
					w.WriteString(" " + strconv.Itoa(*first+k**step))
				}
			}
			w.WriteString("\n")
			if err := w.Flush(); err != nil {
				return err
			}
		case holdClose:
			return nil
		default:
			return fmt.Errorf("recovery: holder: unknown command %q", sc.Text())
		}
	}
	return sc.Err()
}

// recreate re-creates the connections, first the limit of open files
// checked. It returns those it made, also on error.
func recreate(first, step, count int) ([]*net.TCPConn, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if uint64(count)+holderSpare > lim.Cur {
		return nil, fmt.Errorf("%d connections need more open files than RLIMIT_NOFILE's %d", count, lim.Cur)
	}
	conns := make([]*net.TCPConn, 0, count)
	for k := range count {
		st := connState(first + k*step)
		c, err := agent.Recreate(&st, nil)
		if err != nil {
			return conns, fmt.Errorf("connection %d (%s): %w", first+k*step, st.Client, err)
		}
		conns = append(conns, c.(*net.TCPConn)) // Recreate makes a *net.TCPConn
	}
	return conns, nil
}

// outstanding reports whether c's socket has bytes sent and not
// acknowledged.
func outstanding(c *net.TCPConn) (bool, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, err
	}
	var info *unix.TCPInfo
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return false, err
	}
	if gerr != nil {
		return false, fmt.Errorf("recovery: TCP_INFO: %w", gerr)
	}
	return info.Unacked > 0, nil
}

// closeConns resets every connection (SO_LINGER 0: no FIN to retransmit
// to clients that do not exist) and frees its socket.
func closeConns(conns []*net.TCPConn) {
	for _, c := range conns {
		c.SetLinger(0)
		c.Close()
	}
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
