package neigh

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/packet"
	"github.com/rs/zerolog"
)

var (
	switchMAC = [6]byte{2, 0, 0, 0, 0, 2}
	switchIP  = [4]byte{198, 18, 0, 2}
	be0IP     = [4]byte{198, 18, 0, 21}
	be1IP     = [4]byte{198, 18, 0, 22}
	be0MAC    = [6]byte{2, 0, 0, 0, 0, 21}
	be1MAC    = [6]byte{2, 0, 0, 0, 0, 22}
	testLink  = Link{MAC: switchMAC, IPv4: netip.AddrFrom4(switchIP)}
)

const testRefresh = 10 * time.Second

func testConfig() Config {
	return Config{
		VIP:       netip.AddrFrom4(vip4),
		Backends:  []netip.Addr{netip.AddrFrom4(be0IP), netip.AddrFrom4(be1IP)},
		Refresh:   testRefresh,
		AnswerVIP: true,
	}
}

// step is one thing the fake socket does when the resolver reads it.
type step struct {
	frame []byte // delivered
	wait  bool   // the read waits for its deadline: the clock jumps to it
	do    func() // run inside the read, as another goroutine would
	err   error  // returned
}

// sent is a frame the resolver wrote, with the fake time it wrote it at.
type sent struct {
	At    time.Duration
	Frame []byte
}

var errScriptDone = errors.New("script done")

// fakeConn is an in-memory socket: reads play a script of steps and drive
// a fake clock through the resolver's deadlines; writes are recorded.
type fakeConn struct {
	mu       sync.Mutex // Run's context may close it from another goroutine
	start    time.Time
	now      time.Time
	deadline time.Time
	steps    []step
	sent     []sent
	closed   bool
}

func newFakeConn(steps ...step) *fakeConn {
	start := time.Unix(1000, 0)
	return &fakeConn{start: start, now: start, steps: steps}
}

func (c *fakeConn) clock() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.steps) > 0 {
		s := c.steps[0]
		c.steps = c.steps[1:]
		switch {
		case s.do != nil:
			c.mu.Unlock()
			s.do()
			c.mu.Lock()
			if !c.deadline.IsZero() && !c.now.Before(c.deadline) {
				return 0, nil, os.ErrDeadlineExceeded
			}
		case s.wait:
			if c.deadline.IsZero() {
				return 0, nil, errors.New("fake: waiting without a deadline would block for ever")
			}
			if c.now.Before(c.deadline) {
				c.now = c.deadline
			}
			return 0, nil, os.ErrDeadlineExceeded
		case s.err != nil:
			return 0, nil, s.err
		default:
			return copy(b, s.frame), &packet.Addr{}, nil
		}
	}
	return 0, nil, errScriptDone
}

func (c *fakeConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if a, ok := addr.(*packet.Addr); !ok || [6]byte(a.HardwareAddr) != [6]byte(b[0:6]) {
		return 0, errors.New("fake: address is not the frame's destination")
	}
	c.sent = append(c.sent, sent{c.now.Sub(c.start), append([]byte(nil), b...)})
	return len(b), nil
}

func (c *fakeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	return nil
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// takeSent returns the frames sent so far and forgets them.
func (c *fakeConn) takeSent() []sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sent
	c.sent = nil
	return s
}

func newTestResolver(c *fakeConn, cfg Config, tab *Table) *Resolver {
	r := New(c, testLink, cfg, tab, zerolog.Nop())
	r.now = c.clock
	return r
}

// run runs r until its script ends.
func run(t *testing.T, r *Resolver) {
	t.Helper()
	if err := r.Run(context.Background()); !errors.Is(err, errScriptDone) {
		t.Fatalf("Run = %v, want the end of the script", err)
	}
}

// Frames the switch sends.
func gratuitous(t testing.TB, at time.Duration) []sent {
	var out []sent
	for range gratuitousARPs {
		out = append(out,
			sent{at, arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: switchMAC, spa: vip4, tpa: vip4}.bytes(t)},
			sent{at, arpMsg{dst: broadcastMAC, op: arpOpReply, sha: switchMAC, spa: vip4, tha: switchMAC, tpa: vip4}.bytes(t)})
	}
	return out
}

func query(t testing.TB, at time.Duration, ip [4]byte) sent {
	return sent{at, arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: switchMAC, spa: switchIP, tpa: ip}.bytes(t)}
}

func TestHandle(t *testing.T) {
	vipReply := func(to [6]byte, ip [4]byte) []sent {
		return []sent{{0, arpMsg{dst: to, op: arpOpReply, sha: switchMAC, spa: vip4, tha: to, tpa: ip}.bytes(t)}}
	}
	off := testConfig()
	off.AnswerVIP = false
	for _, c := range []struct {
		name    string
		cfg     Config // testConfig() if zero
		frame   []byte
		want    []sent
		learned map[int][6]byte
	}{
		{name: "request for the VIP",
			frame: arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: clientMAC, spa: clientIP, tpa: vip4}.bytes(t),
			want:  vipReply(clientMAC, clientIP)},
		{name: "probe for the VIP (sender 0.0.0.0)",
			frame: arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: clientMAC, tpa: vip4}.bytes(t),
			want:  vipReply(clientMAC, [4]byte{})},
		{name: "request for the VIP from a back-end",
			frame:   arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: be1MAC, spa: be1IP, tpa: vip4}.bytes(t),
			want:    vipReply(be1MAC, be1IP),
			learned: map[int][6]byte{1: be1MAC}},
		{name: "request for the VIP, AnswerVIP off", cfg: off,
			frame: arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: clientMAC, spa: clientIP, tpa: vip4}.bytes(t)},
		{name: "request for another address",
			frame: arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: clientMAC, spa: clientIP, tpa: [4]byte{198, 18, 0, 101}}.bytes(t)},
		{name: "another host announcing the VIP",
			frame: arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: clientMAC, spa: vip4, tpa: vip4}.bytes(t)},
		{name: "reply for the VIP",
			frame: arpMsg{dst: switchMAC, op: arpOpReply, sha: clientMAC, spa: clientIP, tha: switchMAC, tpa: vip4}.bytes(t)},
		{name: "reply from a back-end",
			frame:   arpMsg{dst: switchMAC, op: arpOpReply, sha: be0MAC, spa: be0IP, tha: switchMAC, tpa: switchIP}.bytes(t),
			learned: map[int][6]byte{0: be0MAC}},
		{name: "reply from a back-end, AnswerVIP off", cfg: off,
			frame:   arpMsg{dst: switchMAC, op: arpOpReply, sha: be0MAC, spa: be0IP, tha: switchMAC, tpa: switchIP}.bytes(t),
			learned: map[int][6]byte{0: be0MAC}},
		{name: "request from a back-end for another host",
			frame:   arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: be1MAC, spa: be1IP, tpa: clientIP}.bytes(t),
			learned: map[int][6]byte{1: be1MAC}},
		{name: "back-end address from a broadcast MAC",
			frame: arpMsg{dst: broadcastMAC, op: arpOpReply, sha: broadcastMAC, spa: be0IP, tpa: switchIP}.bytes(t)},
		{name: "back-end address from a multicast MAC",
			frame: arpMsg{dst: broadcastMAC, op: arpOpReply, sha: [6]byte{1, 0, 0x5e, 0, 0, 1}, spa: be0IP, tpa: switchIP}.bytes(t)},
		{name: "back-end address from the zero MAC",
			frame: arpMsg{dst: broadcastMAC, op: arpOpReply, spa: be0IP, tpa: switchIP}.bytes(t)},
		{name: "request for the VIP from a broadcast MAC",
			frame: arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: broadcastMAC, spa: clientIP, tpa: vip4}.bytes(t)},
		{name: "our own frame seen again",
			frame: arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: switchMAC, spa: be0IP, tpa: vip4}.bytes(t)},
		{name: "short",
			frame: arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: clientMAC, spa: clientIP, tpa: vip4}.bytes(t)[:arpFrameLen-1]},
		{name: "not Ethernet/IPv4 ARP",
			frame: mutate(arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: be0MAC, spa: be0IP, tpa: vip4}.bytes(t), 16, 0x86)},
		{name: "RARP",
			frame: mutate(arpMsg{dst: broadcastMAC, op: arpOpReply, sha: be0MAC, spa: be0IP, tpa: vip4}.bytes(t), 21, 4)},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			if cfg.Backends == nil {
				cfg = testConfig()
			}
			conn := newFakeConn()
			tab := NewTable(len(cfg.Backends))
			r := newTestResolver(conn, cfg, tab)
			r.handle(&cfg, c.frame)
			if diff := cmp.Diff(c.want, conn.takeSent()); diff != "" {
				t.Errorf("sent (-want +got):\n%s", diff)
			}
			for b := range cfg.Backends {
				mac, ok := tab.Lookup(b)
				want, wantOK := c.learned[b]
				if ok != wantOK || mac != want {
					t.Errorf("back-end %d: %v %v, want %v %v", b, mac, ok, want, wantOK)
				}
			}
		})
	}
}

func TestRunStart(t *testing.T) {
	for _, c := range []struct {
		name      string
		answerVIP bool
	}{
		{"answering for the VIP", true},
		{"AnswerVIP off", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.AnswerVIP = c.answerVIP
			cfg.Backends = append(cfg.Backends, netip.MustParseAddr("2001:db8::21")) // no ARP for IPv6
			conn := newFakeConn()
			run(t, newTestResolver(conn, cfg, NewTable(3)))
			var want []sent
			if c.answerVIP {
				want = gratuitous(t, 0)
			}
			want = append(want, query(t, 0, be0IP), query(t, 0, be1IP))
			if diff := cmp.Diff(want, conn.takeSent()); diff != "" {
				t.Errorf("sent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunWithoutOwnAddress(t *testing.T) {
	conn := newFakeConn()
	cfg := testConfig()
	cfg.AnswerVIP = false
	r := New(conn, Link{MAC: switchMAC}, cfg, NewTable(2), zerolog.Nop())
	r.now = conn.clock
	run(t, r)
	probe := func(ip [4]byte) sent {
		return sent{0, arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: switchMAC, tpa: ip}.bytes(t)}
	}
	if diff := cmp.Diff([]sent{probe(be0IP), probe(be1IP)}, conn.takeSent()); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
}

// TestRunSchedule: unresolved back-ends are asked every fastRetry, all of
// them every Refresh.
func TestRunSchedule(t *testing.T) {
	cfg := testConfig()
	cfg.AnswerVIP = false
	reply := func(mac [6]byte, ip [4]byte) []byte {
		return arpMsg{dst: switchMAC, op: arpOpReply, sha: mac, spa: ip, tha: switchMAC, tpa: switchIP}.bytes(t)
	}
	tab := NewTable(2)
	conn := newFakeConn(
		step{wait: true},                  // 200 ms: both asked again
		step{frame: reply(be0MAC, be0IP)}, // back-end 0 resolved
		step{wait: true},                  // 400 ms: back-end 1 asked again
		step{wait: true},                  // 600 ms: back-end 1 asked again
		step{frame: reply(be1MAC, be1IP)}, // all resolved
		step{wait: true},                  // Refresh: both asked
		step{wait: true},                  // 2 Refresh: both asked
	)
	run(t, newTestResolver(conn, cfg, tab))
	ms := time.Millisecond
	want := []sent{
		query(t, 0, be0IP), query(t, 0, be1IP),
		query(t, 200*ms, be0IP), query(t, 200*ms, be1IP),
		query(t, 400*ms, be1IP),
		query(t, 600*ms, be1IP),
		query(t, testRefresh, be0IP), query(t, testRefresh, be1IP),
		query(t, 2*testRefresh, be0IP), query(t, 2*testRefresh, be1IP),
	}
	if diff := cmp.Diff(want, conn.takeSent()); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if !tab.Resolved() {
		t.Error("table not resolved")
	}
}

// TestSetConfig: a new configuration wakes Run, which asks every back-end
// at once, announces the VIP it now answers for, and answers by it.
func TestSetConfig(t *testing.T) {
	cfg := testConfig()
	cfg.AnswerVIP = false
	cfg.Backends = cfg.Backends[:1]
	next := testConfig()
	next.Refresh = time.Second
	tab := NewTable(1)
	var r *Resolver
	request := arpMsg{dst: broadcastMAC, op: arpOpRequest, sha: clientMAC, spa: clientIP, tpa: vip4}.bytes(t)
	conn := newFakeConn(
		step{frame: request}, // not answered
		step{wait: true},     // 200 ms
		step{do: func() {
			tab.Grow(2)
			r.SetConfig(next)
		}},
		step{frame: request}, // answered
		step{wait: true},     // 400 ms: back-end 0 and 1 unresolved
	)
	r = newTestResolver(conn, cfg, tab)
	run(t, r)
	ms := time.Millisecond
	want := []sent{
		query(t, 0, be0IP),
		query(t, 200*ms, be0IP),
	}
	want = append(want, gratuitous(t, 200*ms)...)
	want = append(want,
		query(t, 200*ms, be0IP), query(t, 200*ms, be1IP),
		sent{200 * ms, arpMsg{dst: clientMAC, op: arpOpReply, sha: switchMAC, spa: vip4, tha: clientMAC, tpa: clientIP}.bytes(t)},
		query(t, 400*ms, be0IP), query(t, 400*ms, be1IP),
	)
	if diff := cmp.Diff(want, conn.takeSent()); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
}

// TestRunError: a read error ends Run, which returns it and closes the
// socket, and Err reports it; the end of Run's context is no error.
func TestRunError(t *testing.T) {
	t.Run("read error", func(t *testing.T) {
		conn := newFakeConn(step{err: syscall.ENETDOWN})
		r := newTestResolver(conn, testConfig(), NewTable(2))
		if r.Err() != nil {
			t.Fatalf("Err before Run: %v", r.Err())
		}
		if err := r.Run(context.Background()); !errors.Is(err, syscall.ENETDOWN) {
			t.Errorf("Run = %v, want ENETDOWN", err)
		}
		if !errors.Is(r.Err(), syscall.ENETDOWN) {
			t.Errorf("Err = %v, want ENETDOWN", r.Err())
		}
		if !conn.closed {
			t.Error("socket left open")
		}
	})
	t.Run("context ended", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		conn := newFakeConn(step{do: cancel}, step{err: net.ErrClosed})
		r := newTestResolver(conn, testConfig(), NewTable(2))
		if err := r.Run(ctx); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if r.Err() != nil {
			t.Errorf("Err = %v, want nil", r.Err())
		}
	})
}

// The real socket satisfies Conn.
var _ Conn = (*packet.Conn)(nil)
