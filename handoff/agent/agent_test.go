package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"webswitch/handoff"
)

// testSecret is the secret the agents and test switches here share.
var testSecret = []byte("agent test secret")

// testState returns a ConnState the agent accepts with a request of n bytes:
// only the fields DecodeHandoffBody checks are set.
func testState(n int) handoff.ConnState {
	return handoff.ConnState{
		Client: netip.MustParseAddrPort("198.18.0.10:40000"),
		VIP:    netip.MustParseAddrPort("198.18.0.100:443"),
		RcvIRS: 5000,
		RcvNxt: 5001 + uint32(n),
		MSS:    1460,
	}
}

// fakeRepair records Recreate calls and returns one end of a pipe, or err.
type fakeRepair struct {
	mu        sync.Mutex
	err       error // returned by the next Recreate, then cleared
	states    []handoff.ConnState
	requests  [][]byte
	delivered chan net.Conn
}

func newFakeRepair() *fakeRepair { return &fakeRepair{delivered: make(chan net.Conn, 16)} }

func (f *fakeRepair) Recreate(st *handoff.ConnState, request []byte) (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = append(f.states, *st)
	f.requests = append(f.requests, append([]byte(nil), request...))
	if err := f.err; err != nil {
		f.err = nil
		return nil, err
	}
	c, peer := net.Pipe()
	peer.Close()
	return c, nil
}

func (f *fakeRepair) Deliver(c net.Conn) { f.delivered <- c }

func (f *fakeRepair) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.states)
}

// startAgent serves an Agent on a loopback port until the test ends.
func startAgent(t *testing.T, f *fakeRepair, configure func(a *Agent)) (*Agent, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{Secret: testSecret, Recreate: f.Recreate, Deliver: f.Deliver}
	if configure != nil {
		configure(a)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(l) }()
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return a, l.Addr().String()
}

// testSwitch is a blocking switch end of a control connection.
type testSwitch struct {
	t    *testing.T
	c    net.Conn
	s    *handoff.Session
	buf  []byte
	r, w int
}

// dialSwitch connects to addr and, if the secret is right, completes the
// handshake. It returns the error that ended the handshake early, if any.
func dialSwitch(t *testing.T, addr string, secret []byte) (*testSwitch, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	ts := &testSwitch{t: t, c: c, s: handoff.NewSwitchSession(secret, nil), buf: make([]byte, 1<<20)}
	for !ts.s.Ready() {
		if _, err := ts.next(); err != nil {
			return ts, err
		}
	}
	return ts, nil
}

// next flushes pending bytes, then returns the next application message,
// handling handshake messages on the way (it returns a zero Msg when the
// handshake completes).
func (ts *testSwitch) next() (handoff.Msg, error) {
	for {
		if p := ts.s.Pending(); len(p) > 0 {
			n, err := ts.c.Write(p)
			ts.s.Written(n)
			if err != nil {
				return handoff.Msg{}, err
			}
		}
		wasReady := ts.s.Ready()
		n, m, ok, err := ts.s.Receive(ts.buf[ts.r:ts.w])
		if err != nil {
			return handoff.Msg{}, err
		}
		ts.r += n
		if ok {
			return m, nil
		}
		if n > 0 {
			if !wasReady && ts.s.Ready() {
				return handoff.Msg{}, ts.flush()
			}
			continue
		}
		rn, err := ts.c.Read(ts.buf[ts.w:])
		ts.w += rn
		if err != nil {
			return handoff.Msg{}, err
		}
	}
}

func (ts *testSwitch) flush() error {
	p := ts.s.Pending()
	n, err := ts.c.Write(p)
	ts.s.Written(n)
	return err
}

// reply returns the next message that is not a LOAD.
func (ts *testSwitch) reply() handoff.Msg {
	ts.t.Helper()
	for {
		m, err := ts.next()
		if err != nil {
			ts.t.Fatalf("waiting for a reply: %v", err)
		}
		if m.Type != handoff.MsgLoad {
			return m
		}
	}
}

// closedByAgent waits for the agent to close the connection.
func (ts *testSwitch) closedByAgent() {
	ts.t.Helper()
	for {
		_, err := ts.next()
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return
		}
		if err != nil {
			ts.t.Fatalf("want the agent to close the connection, got %v", err)
		}
	}
}

// answer is a reply as the tests compare it: an ERR's code and reason
// decoded.
type answer struct {
	Type   handoff.MsgType
	ID     uint64
	Code   uint16
	Reason string
}

func (ts *testSwitch) answer() answer {
	ts.t.Helper()
	m := ts.reply()
	a := answer{Type: m.Type, ID: m.ID}
	if m.Type == handoff.MsgErr {
		code, reason, err := handoff.DecodeErrBody(m.Body)
		if err != nil {
			ts.t.Fatal(err)
		}
		a.Code, a.Reason = code, string(reason)
	}
	return a
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// waitFor polls cond until it holds or a second passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestAgentHandoffs(t *testing.T) {
	f := newFakeRepair()
	_, addr := startAgent(t, f, nil)
	ts, err := dialSwitch(t, addr, testSecret)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	var want []handoff.ConnState
	var wantReqs [][]byte
	for id := uint64(1); id <= 3; id++ { // pipelined: all sent before any reply is read
		req := bytes.Repeat([]byte{byte('a' + id)}, int(id)*1000)
		st := testState(len(req))
		st.Client = netip.AddrPortFrom(st.Client.Addr(), 40000+uint16(id))
		st.SndISN += uint32(id)
		st.SndNxt += uint32(id)
		if err := ts.s.SendHandoff(id, &st, req); err != nil {
			t.Fatal(err)
		}
		want = append(want, st)
		wantReqs = append(wantReqs, req)
	}
	if err := ts.flush(); err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 3; id++ {
		if m := ts.reply(); m.Type != handoff.MsgOK || m.ID != id || len(m.Body) != 0 {
			t.Fatalf("reply %d: %v id %d body %q, want OK", id, m.Type, m.ID, m.Body)
		}
		select {
		case c := <-f.delivered:
			c.Close()
		case <-time.After(time.Second):
			t.Fatalf("handoff %d not delivered", id)
		}
	}
	f.mu.Lock()
	if diff := cmp.Diff(want, f.states, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("re-created states (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantReqs, f.requests); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	f.mu.Unlock()

	if err := ts.s.Send(handoff.MsgPing, 99, nil); err != nil {
		t.Fatal(err)
	}
	if err := ts.flush(); err != nil {
		t.Fatal(err)
	}
	if m := ts.reply(); m.Type != handoff.MsgPong || m.ID != 99 {
		t.Errorf("reply to PING: %v id %d, want PONG 99", m.Type, m.ID)
	}
}

// TestAgentLoad checks the LOAD reports: one right after the handshake, then
// one at once whenever the reported health changes (the interval is an
// hour, so only a push can deliver them).
func TestAgentLoad(t *testing.T) {
	f := newFakeRepair()
	a, addr := startAgent(t, f, func(a *Agent) {
		a.LoadInterval = time.Hour
		a.Active = func() uint32 { return 42 }
	})
	ts, err := dialSwitch(t, addr, testSecret)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	ts.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	expect := func(step string, want handoff.Health) {
		t.Helper()
		m, err := ts.next()
		if err != nil || m.Type != handoff.MsgLoad {
			t.Fatalf("%s: want LOAD, got %v, %v", step, m.Type, err)
		}
		active, h, err := handoff.DecodeLoadBody(m.Body)
		if err != nil || active != 42 || h != want {
			t.Errorf("%s: LOAD %d active, %v, %v; want 42, %v", step, active, h, err, want)
		}
	}
	expect("after the handshake", handoff.HealthUp)
	a.SetServerUp(false)
	expect("server down", handoff.HealthDown)
	a.SetServerUp(false) // no change: no report
	a.SetDraining(true)
	expect("draining while down", handoff.HealthDraining)
	a.SetDraining(false)
	expect("drain ended", handoff.HealthDown)
	a.SetServerUp(true)
	expect("server up", handoff.HealthUp)
}

// TestAgentShutdown checks the graceful stop: GOAWAY on the open
// connection, a HANDOFF the switch sent before it saw the GOAWAY still
// served, no new control connection accepted, and Shutdown done as soon as
// the switch closes.
func TestAgentShutdown(t *testing.T) {
	f := newFakeRepair()
	a, addr := startAgent(t, f, nil)
	ts, err := dialSwitch(t, addr, testSecret)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	shut := make(chan error, 1)
	go func() { shut <- a.Shutdown(context.Background()) }()
	if m := ts.reply(); m.Type != handoff.MsgGoAway {
		t.Fatalf("first message %v, want GOAWAY", m.Type)
	}
	// A HANDOFF that crossed the GOAWAY: the agent cannot tell it from one
	// sent before, and serves it.
	st := testState(3)
	if err := ts.s.SendHandoff(7, &st, []byte("GET")); err != nil {
		t.Fatal(err)
	}
	if err := ts.flush(); err != nil {
		t.Fatal(err)
	}
	if m := ts.reply(); m.Type != handoff.MsgOK || m.ID != 7 {
		t.Fatalf("reply to the HANDOFF after GOAWAY: %v id %d, want OK 7", m.Type, m.ID)
	}
	select {
	case c := <-f.delivered:
		c.Close()
	case <-time.After(time.Second):
		t.Fatal("handoff after GOAWAY not delivered")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new control connection was accepted after Shutdown began")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the switch closed its connection", err)
	case <-time.After(50 * time.Millisecond):
	}
	ts.c.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the switch closed")
	}
}

func TestAgentRejects(t *testing.T) {
	tests := []struct {
		name    string
		secret  []byte
		attack  func(ts *testSwitch) // after the handshake, if it succeeds
		counter func(s *Stats) *atomic.Uint64
	}{
		{
			name:    "wrong secret",
			secret:  []byte("not the secret"),
			counter: func(s *Stats) *atomic.Uint64 { return &s.RejectAuth },
		},
		{
			name:   "tampered HANDOFF",
			secret: testSecret,
			attack: func(ts *testSwitch) {
				st := testState(4)
				if err := ts.s.SendHandoff(1, &st, []byte("GET ")); err != nil {
					ts.t.Fatal(err)
				}
				p := ts.s.Pending()
				p[len(p)-handoff.MACLen-1] ^= 1 // the last request byte
				if err := ts.flush(); err != nil {
					ts.t.Fatal(err)
				}
			},
			counter: func(s *Stats) *atomic.Uint64 { return &s.RejectMAC },
		},
		{
			name:   "unknown version",
			secret: testSecret,
			attack: func(ts *testSwitch) {
				if err := ts.s.Send(handoff.MsgPing, 1, nil); err != nil {
					ts.t.Fatal(err)
				}
				ts.s.Pending()[0] = handoff.Version + 1 // the header starts with the version
				if err := ts.flush(); err != nil {
					ts.t.Fatal(err)
				}
			},
			counter: func(s *Stats) *atomic.Uint64 { return &s.RejectVersion },
		},
		{
			name:   "EOF inside a frame",
			secret: testSecret,
			attack: func(ts *testSwitch) {
				if err := ts.s.Send(handoff.MsgPing, 1, nil); err != nil {
					ts.t.Fatal(err)
				}
				if _, err := ts.c.Write(ts.s.Pending()[:handoff.HeaderLen+1]); err != nil {
					ts.t.Fatal(err)
				}
				ts.s.Written(len(ts.s.Pending())) // the rest is never sent
				if err := ts.c.(*net.TCPConn).CloseWrite(); err != nil {
					ts.t.Fatal(err)
				}
			},
			counter: func(s *Stats) *atomic.Uint64 { return &s.RejectTruncated },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeRepair()
			a, addr := startAgent(t, f, nil)
			bad, err := dialSwitch(t, addr, tt.secret)
			if tt.attack != nil {
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				tt.attack(bad)
			}
			bad.closedByAgent()
			if n := tt.counter(&a.Stats).Load(); n != 1 {
				t.Errorf("rejection counted %d times, want 1", n)
			}
			if n := f.calls(); n != 0 {
				t.Errorf("Recreate called %d times for a rejected connection", n)
			}

			// A good switch on the same agent keeps working.
			good, err := dialSwitch(t, addr, testSecret)
			if err != nil {
				t.Fatalf("good handshake: %v", err)
			}
			st := testState(0)
			if err := good.s.SendHandoff(5, &st, nil); err != nil {
				t.Fatal(err)
			}
			if err := good.flush(); err != nil {
				t.Fatal(err)
			}
			if m := good.reply(); m.Type != handoff.MsgOK || m.ID != 5 {
				t.Errorf("good switch got %v id %d, want OK 5", m.Type, m.ID)
			}
			// Counted after the OK is written.
			waitFor(t, "Stats.Handoffs = 1", func() bool { return a.Stats.Handoffs.Load() == 1 })
		})
	}
}

func TestAgentHandshakeTimeout(t *testing.T) {
	a, addr := startAgent(t, newFakeRepair(), func(a *Agent) { a.Timeout = 50 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// Read the HELLO and say nothing: the agent must give up.
	if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
		t.Fatalf("reading until the agent closes: %v", err)
	}
	waitFor(t, "the timeout to be counted", func() bool { return a.Stats.RejectTimeout.Load() == 1 })
}

func TestAgentErrReplies(t *testing.T) {
	f := newFakeRepair()
	a, addr := startAgent(t, f, nil)
	ts, err := dialSwitch(t, addr, testSecret)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	st := testState(4)
	badBody := handoff.AppendHandoffBody(nil, &st, []byte("GET")) // RcvNxt counts 4 bytes

	f.mu.Lock()
	f.err = errors.New("bind: address already in use")
	f.mu.Unlock()
	if err := ts.s.SendHandoff(1, &st, []byte("GET ")); err != nil {
		t.Fatal(err)
	}
	// An authentic but undecodable body, as from a buggy switch.
	if err := ts.s.Send(handoff.MsgHandoff, 2, badBody); err != nil {
		t.Fatal(err)
	}
	if err := ts.s.SendHandoff(3, &st, []byte("GET ")); err != nil {
		t.Fatal(err)
	}
	if err := ts.flush(); err != nil {
		t.Fatal(err)
	}

	var got []answer
	for range 3 {
		got = append(got, ts.answer())
	}
	want := []answer{
		{handoff.MsgErr, 1, handoff.ErrCodeRecreate, "bind: address already in use"},
		{handoff.MsgErr, 2, handoff.ErrCodeMalformed, handoff.ErrMalformed.Error()},
		{handoff.MsgOK, 3, 0, ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}
	if n := f.calls(); n != 2 {
		t.Errorf("Recreate called %d times, want 2 (not for the malformed body)", n)
	}
	waitFor(t, "Stats.Handoffs = 1", func() bool { return a.Stats.Handoffs.Load() == 1 })
	for name, tc := range map[string]struct {
		n    *atomic.Uint64
		want uint64
	}{
		"RecreateFailed": {&a.Stats.RecreateFailed, 1},
		"Malformed":      {&a.Stats.Malformed, 1},
		"Sessions":       {&a.Stats.Sessions, 1},
	} {
		if got := tc.n.Load(); got != tc.want {
			t.Errorf("Stats.%s = %d, want %d", name, got, tc.want)
		}
	}
}

// TestAgentErrExists: a HANDOFF of a connection whose socket this host
// holds already is answered ERR(exists), which the switch takes as OK,
// and counted apart from failures.
func TestAgentErrExists(t *testing.T) {
	f := newFakeRepair()
	a, addr := startAgent(t, f, nil)
	ts, err := dialSwitch(t, addr, testSecret)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	st := testState(4)
	f.mu.Lock()
	f.err = fmt.Errorf("repair: connect %s: %w", st.Client, ErrExists)
	f.mu.Unlock()
	if err := ts.s.SendHandoff(1, &st, []byte("GET ")); err != nil {
		t.Fatal(err)
	}
	if err := ts.flush(); err != nil {
		t.Fatal(err)
	}
	if got := ts.answer(); got.Type != handoff.MsgErr || got.Code != handoff.ErrCodeExists {
		t.Errorf("answer %+v, want ERR(exists)", got)
	}
	if e, f := a.Stats.Exists.Load(), a.Stats.RecreateFailed.Load(); e != 1 || f != 0 {
		t.Errorf("exists %d, recreate_failed %d; want 1 and 0", e, f)
	}
}

// TestAgentDeliversUnacked: a connection re-created for a switch that dies
// before the OK is written is delivered all the same.
func TestAgentDeliversUnacked(t *testing.T) {
	f := newFakeRepair()
	started, switchGone := make(chan struct{}), make(chan struct{})
	a, addr := startAgent(t, f, func(a *Agent) {
		a.LoadInterval = time.Hour // no LOAD write to find the reset first
		a.Recreate = func(st *handoff.ConnState, request []byte) (net.Conn, error) {
			close(started)
			<-switchGone
			return f.Recreate(st, request)
		}
	})
	ts, err := dialSwitch(t, addr, testSecret)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	st := testState(3)
	if err := ts.s.SendHandoff(1, &st, []byte("GET")); err != nil {
		t.Fatal(err)
	}
	if err := ts.flush(); err != nil {
		t.Fatal(err)
	}
	<-started
	// The switch dies: its kernel resets the connection (on loopback, the
	// agent's end has the reset when Close returns), so writing OK fails.
	if err := ts.c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	ts.c.Close()
	close(switchGone)
	select {
	case c := <-f.delivered:
		c.Close()
	case <-time.After(time.Second):
		t.Fatal("the re-created connection was not delivered")
	}
	if n, m := a.Stats.DeliveredUnacked.Load(), a.Stats.Handoffs.Load(); n != 1 || m != 0 {
		t.Errorf("Stats.DeliveredUnacked = %d, Handoffs = %d; want 1, 0", n, m)
	}
}

// testFlows returns n connections to one VIP from distinct clients.
func testFlows(n int) []handoff.FlowID {
	ids := make([]handoff.FlowID, n)
	for i := range ids {
		ids[i] = handoff.FlowID{
			Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), uint16(40000+i)),
			VIP:    netip.MustParseAddrPort("198.18.0.100:443"),
		}
	}
	return ids
}

// tableLookup is an Agent.Lookup answering from a table: handoff.Owner{}
// for a connection not in it.
func tableLookup(table map[handoff.FlowID]handoff.Owner) func([]handoff.FlowID, []handoff.Owner) ([]handoff.Owner, error) {
	return func(ids []handoff.FlowID, owners []handoff.Owner) ([]handoff.Owner, error) {
		for _, id := range ids {
			owners = append(owners, table[id])
		}
		return owners, nil
	}
}

// sendLookup queues a LOOKUP of ids.
func (ts *testSwitch) sendLookup(id uint64, ids []handoff.FlowID) {
	ts.t.Helper()
	body, err := handoff.AppendLookupBody(nil, ids)
	if err != nil {
		ts.t.Fatal(err)
	}
	if err := ts.s.Send(handoff.MsgLookup, id, body); err != nil {
		ts.t.Fatal(err)
	}
}

// owners reads the reply to the LOOKUP id of n connections.
func (ts *testSwitch) owners(id uint64, n int) []handoff.Owner {
	ts.t.Helper()
	m := ts.reply()
	if m.Type != handoff.MsgOwners || m.ID != id {
		ts.t.Fatalf("reply %v id %d, want OWNERS %d", m.Type, m.ID, id)
	}
	if err := handoff.CheckOwners(m.Body, n); err != nil {
		ts.t.Fatalf("OWNERS %d: %v", id, err)
	}
	got := make([]handoff.Owner, n)
	for i := range got {
		got[i] = handoff.OwnerAt(m.Body, i)
	}
	return got
}

func TestAgentLookup(t *testing.T) {
	ids := testFlows(handoff.MaxLookup)
	table := map[handoff.FlowID]handoff.Owner{
		ids[0]:  {State: handoff.SockEstablished, IdleMS: 12},
		ids[2]:  {State: handoff.SockTimeWait, IdleMS: handoff.NoIdle},
		ids[63]: {State: handoff.SockCloseWait, IdleMS: 70_000},
	}
	a, addr := startAgent(t, newFakeRepair(), func(a *Agent) { a.Lookup = tableLookup(table) })
	ts, err := dialSwitch(t, addr, testSecret)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	asked := [][]handoff.FlowID{ids[:3], ids, ids[1:2]} // pipelined
	for i, batch := range asked {
		ts.sendLookup(uint64(10+i), batch)
	}
	if err := ts.flush(); err != nil {
		t.Fatal(err)
	}
	for i, batch := range asked {
		want := make([]handoff.Owner, len(batch))
		for j, id := range batch {
			want[j] = table[id]
		}
		if diff := cmp.Diff(want, ts.owners(uint64(10+i), len(batch))); diff != "" {
			t.Errorf("LOOKUP %d (-want +got):\n%s", 10+i, diff)
		}
	}
	for name, tc := range map[string]struct {
		n    *atomic.Uint64
		want uint64
	}{
		"Lookups":      {&a.Stats.Lookups, 3},
		"LookupConns":  {&a.Stats.LookupConns, 3 + handoff.MaxLookup + 1},
		"LookupOwned":  {&a.Stats.LookupOwned, 2 + 3},
		"LookupFailed": {&a.Stats.LookupFailed, 0},
	} {
		if got := tc.n.Load(); got != tc.want {
			t.Errorf("Stats.%s = %d, want %d", name, got, tc.want)
		}
	}
}

// TestAgentLookupErrors: a LOOKUP the agent cannot answer gets ERR, never
// OWNERS saying no owner, and the connection goes on.
func TestAgentLookupErrors(t *testing.T) {
	errNetlink := errors.New("sock_diag lookup: no buffer space available")
	tests := []struct {
		name    string
		lookup  func([]handoff.FlowID, []handoff.Owner) ([]handoff.Owner, error)
		body    []byte
		want    answer
		counter func(s *Stats) *atomic.Uint64
	}{
		{
			name:    "malformed body",
			lookup:  tableLookup(nil),
			body:    []byte{4, 0}, // no connection
			want:    answer{handoff.MsgErr, 1, handoff.ErrCodeMalformed, handoff.ErrMalformed.Error()},
			counter: func(s *Stats) *atomic.Uint64 { return &s.Malformed },
		},
		{
			name: "lookup fails",
			lookup: func(ids []handoff.FlowID, owners []handoff.Owner) ([]handoff.Owner, error) {
				return owners, errNetlink
			},
			want:    answer{handoff.MsgErr, 1, handoff.ErrCodeBusy, errNetlink.Error()},
			counter: func(s *Stats) *atomic.Uint64 { return &s.LookupFailed },
		},
		{
			name:    "no lookup",
			want:    answer{handoff.MsgErr, 1, handoff.ErrCodeBusy, errNoLookup.Error()},
			counter: func(s *Stats) *atomic.Uint64 { return &s.LookupFailed },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, addr := startAgent(t, newFakeRepair(), func(a *Agent) { a.Lookup = tt.lookup })
			ts, err := dialSwitch(t, addr, testSecret)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if tt.body == nil {
				ts.sendLookup(1, testFlows(2))
			} else if err := ts.s.Send(handoff.MsgLookup, 1, tt.body); err != nil {
				t.Fatal(err)
			}
			if err := ts.s.Send(handoff.MsgPing, 2, nil); err != nil {
				t.Fatal(err)
			}
			if err := ts.flush(); err != nil {
				t.Fatal(err)
			}
			if got := ts.answer(); got != tt.want {
				t.Errorf("reply %+v, want %+v", got, tt.want)
			}
			if got := ts.answer(); got != (answer{Type: handoff.MsgPong, ID: 2}) {
				t.Errorf("reply to the next PING: %+v, want PONG 2", got)
			}
			if n := tt.counter(&a.Stats).Load(); n != 1 {
				t.Errorf("counted %d times, want 1", n)
			}
		})
	}
}

// TestAgentLookupNoAllocs: a LOOKUP and its OWNERS, both ends included,
// allocate nothing once the buffers are warm.
func TestAgentLookupNoAllocs(t *testing.T) {
	ids := testFlows(handoff.MaxLookup)
	table := map[handoff.FlowID]handoff.Owner{ids[5]: {State: handoff.SockEstablished, IdleMS: 3}}
	_, addr := startAgent(t, newFakeRepair(), func(a *Agent) {
		a.LoadInterval = time.Hour
		a.Lookup = tableLookup(table)
	})
	ts, err := dialSwitch(t, addr, testSecret)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	body, err := handoff.AppendLookupBody(nil, ids)
	if err != nil {
		t.Fatal(err)
	}
	round := func() {
		if err := ts.s.Send(handoff.MsgLookup, 1, body); err != nil {
			t.Fatal(err)
		}
		if err := ts.flush(); err != nil {
			t.Fatal(err)
		}
		if m := ts.reply(); m.Type != handoff.MsgOwners {
			t.Fatalf("reply %v, want OWNERS", m.Type)
		}
	}
	round()
	if allocs := testing.AllocsPerRun(100, round); allocs != 0 {
		t.Errorf("LOOKUP of %d connections: %v allocations, want 0", len(ids), allocs)
	}
}

func TestAgentClose(t *testing.T) {
	f := newFakeRepair()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{Secret: testSecret, Recreate: f.Recreate, Deliver: f.Deliver}
	served := make(chan error, 1)
	go func() { served <- a.Serve(l) }()
	ts, err := dialSwitch(t, l.Addr().String(), testSecret)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Serve did not return after Close")
	}
	ts.closedByAgent()
	if err := a.Serve(l); err != nil {
		t.Errorf("Serve on a closed agent: %v", err)
	}
}

func TestAgentConfig(t *testing.T) {
	f := newFakeRepair()
	for name, a := range map[string]*Agent{
		"no secret":   {Recreate: f.Recreate, Deliver: f.Deliver},
		"no Recreate": {Secret: testSecret, Deliver: f.Deliver},
		"no Deliver":  {Secret: testSecret, Recreate: f.Recreate},
	} {
		if err := a.Serve(nil); !errors.Is(err, errAgentConfig) {
			t.Errorf("%s: Serve = %v, want the config error", name, err)
		}
	}
}

// TestAgentStatsSnapshot: every counter appears under its own name.
func TestAgentStatsSnapshot(t *testing.T) {
	var s Stats
	counters := map[string]*atomic.Uint64{
		"sessions": &s.Sessions, "handoffs": &s.Handoffs, "recreate_failed": &s.RecreateFailed,
		"malformed": &s.Malformed, "reject_auth": &s.RejectAuth, "reject_mac": &s.RejectMAC,
		"reject_version": &s.RejectVersion, "reject_type": &s.RejectType, "reject_state": &s.RejectState,
		"reject_too_large": &s.RejectTooLarge, "reject_malformed": &s.RejectMalformed,
		"reject_truncated": &s.RejectTruncated, "reject_timeout": &s.RejectTimeout,
		"delivered_unacked": &s.DeliveredUnacked, "exists": &s.Exists, "lookups": &s.Lookups, "lookup_conns": &s.LookupConns,
		"lookup_owned": &s.LookupOwned, "lookup_failed": &s.LookupFailed,
	}
	var n uint64
	for _, c := range counters {
		n++
		c.Store(n * 10) // distinct values: a swapped name would show
	}
	snap := s.Snapshot()
	if len(snap) != len(counters) {
		t.Errorf("Snapshot has %d names, want %d", len(snap), len(counters))
	}
	for name, c := range counters {
		if snap[name] != c.Load() {
			t.Errorf("Snapshot[%q] = %d, want %d", name, snap[name], c.Load())
		}
	}
}
