package shard

import (
	"strings"
	"testing"
	"time"

	"webswitch/handoff"
	"webswitch/handoff/control"
	"webswitch/l7"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

const bothReq = "GET / HTTP/1.1\r\nHost: both.example\r\n\r\n"

// targets opens n connections to pool "both" (be1 and be2, round-robin)
// from ports starting at port and returns how many each back-end's agent
// got (answered OK), and how many the switch answered 503.
func (h *harness) targets(port uint16, n int) (perBackend [2]int, unavailable int) {
	h.t.Helper()
	for i := range n {
		c := h.client(port + uint16(i))
		c.handshake()
		c.data(header.FlagPSH, bothReq)
		h.pump()
		handed := false
		for b, a := range h.agents {
			if len(a.Msgs) > 0 {
				id, _, _ := h.handoff(b)
				h.answer(b, id, true)
				perBackend[b]++
				handed = true
			}
		}
		out := h.tx.take()
		if !handed {
			if body, _ := c.response(out); !strings.HasPrefix(string(body), "HTTP/1.1 503 ") {
				h.t.Fatalf("connection %d: neither handed off nor answered 503: %q", i, body)
			}
			unavailable++
		}
	}
	return perBackend, unavailable
}

// TestHealthChecks follows a back-end whose agent stops answering PINGs:
// it takes new connections until HealthFall checks in a row failed, then
// none; after a reconnection it needs HealthRise good checks to come back.
func TestHealthChecks(t *testing.T) {
	h := newHarness(t)
	cfg := &h.s.cfg.Control
	h.agents[1].Silent = true
	h.advance(0) // the first PINGs go out as soon as the connections are ready
	if got, _ := h.targets(41000, 4); got != [2]int{2, 2} {
		t.Fatalf("before any check failed: %v connections per back-end, want 2 each", got)
	}
	// Failures at timeout, interval+timeout, ... ; the last one takes it down.
	downAt := time.Duration(cfg.HealthFall-1)*cfg.HealthInterval + cfg.HealthTimeout
	step := cfg.HealthTimeout / 2
	for at := step; at < downAt; at += step {
		h.advance(step)
		if !h.s.ctl.Conn(1).Usable() {
			t.Fatalf("be2 down %v after the first PING, want %v", at, downAt)
		}
	}
	h.advance(step)
	if c := h.s.ctl.Conn(1); c.Usable() || c.State() != control.StateIdle || !c.Down() {
		t.Fatalf("be2 after %d missed PINGs: state %v, down %v; want idle and down", cfg.HealthFall, c.State(), c.Down())
	}
	if n := h.agents[1].Pings; n != cfg.HealthFall {
		t.Errorf("be2 got %d PINGs, want %d", n, cfg.HealthFall)
	}
	if got, _ := h.targets(41010, 4); got != [2]int{4, 0} {
		t.Errorf("be2 down: %v connections per back-end, want all on be1", got)
	}

	// The agent answers again on a new connection.
	h.reconnect(1)
	h.advance(0) // good check 1
	if h.s.ctl.Conn(1).Usable() {
		t.Fatal("be2 usable after one good check, want HealthRise = 2")
	}
	if got, _ := h.targets(41020, 2); got != [2]int{2, 0} {
		t.Errorf("be2 rising: %v connections per back-end, want all on be1", got)
	}
	h.advance(cfg.HealthInterval) // good check 2
	if got, _ := h.targets(41030, 4); got != [2]int{2, 2} {
		t.Errorf("be2 back: %v connections per back-end, want 2 each", got)
	}
	snap := h.s.snapshot()
	if b := snap.Backends; b[0].Downs != 0 || b[1].Downs != 1 || b[1].HandoffsOK != 4 {
		t.Errorf("back-end counters %+v, want be2 down once and 4 handoffs OK", b)
	}
	if h.agents[0].Pings < 3 || !h.s.ctl.Conn(0).Usable() {
		t.Errorf("be1: %d PINGs, usable %v; want checks all along and up", h.agents[0].Pings, h.s.ctl.Conn(0).Usable())
	}
}

// TestAgentHealth checks that the agent's own report takes effect at once,
// both ways, with no thresholds.
func TestAgentHealth(t *testing.T) {
	h := newHarness(t)
	report := func(hl handoff.Health) {
		t.Helper()
		if err := h.agents[1].Sess.Send(handoff.MsgLoad, 0, handoff.AppendLoadBody(nil, 0, hl)); err != nil {
			t.Fatal(err)
		}
		h.pump()
	}
	for i, tt := range []struct {
		health handoff.Health
		want   [2]int
	}{
		{handoff.HealthDown, [2]int{4, 0}},
		{handoff.HealthUp, [2]int{2, 2}},
		{handoff.HealthDraining, [2]int{4, 0}},
		{handoff.HealthUp, [2]int{2, 2}},
	} {
		report(tt.health)
		if got, _ := h.targets(42000+uint16(10*i), 4); got != tt.want {
			t.Errorf("be2 reports %v: %v connections per back-end, want %v", tt.health, got, tt.want)
		}
	}
	if d := h.s.snapshot().Backends[1].Downs; d != 0 {
		t.Errorf("be2 counted %d downs, want 0: its agent's report is not a failure", d)
	}
}

// TestGoAway follows an agent upgrade: the old agent sends GOAWAY with a
// handoff in flight; until the switch's new connection (to the new agent)
// is ready, new connections still go to the old agent, which serves them;
// then they go to the new one; the old agent's answers are still taken.
func TestGoAway(t *testing.T) {
	const webReq = "GET / HTTP/1.1\r\nHost: web.example\r\n\r\n" // pool "web": be2 only
	h := newHarness(t)
	old := h.agents[1]
	open := func(port uint16) *client {
		c := h.client(port)
		c.handshake()
		c.data(header.FlagPSH, webReq)
		return c
	}
	c := open(43000)
	h.pump()
	if err := old.Sess.Send(handoff.MsgGoAway, 0, nil); err != nil {
		t.Fatal(err)
	}
	id, _, _ := h.handoff(1) // the old agent has it
	if c := h.s.ctl.Conn(1); len(h.s.ctl.Retired()) != 1 || c.State() != control.StateIdle || c.Down() {
		t.Fatalf("after GOAWAY: %d retired, new connection %v (down %v); want 1 retired and a reconnection due, not down",
			len(h.s.ctl.Retired()), c.State(), c.Down())
	}
	between := open(43001) // the new connection is not ready yet
	idBetween, _, _ := h.handoff(1)
	h.reconnect(1) // the new agent, on the same address
	d := open(43002)
	idNew, _, _ := h.handoff(1)
	if h.agents[1] == old {
		t.Fatal("the handoff after the reconnection went to the old agent")
	}
	h.answer(1, idNew, true)
	for _, id := range []uint64{id, idBetween} { // the old agent answers last
		if err := old.Sess.Send(handoff.MsgOK, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	h.pump()
	for _, cl := range []*client{c, between, d} {
		cl.data(0, "")
	}
	f := h.tx.take()
	if len(f) != 3 {
		t.Fatalf("after the answers: %d frames, want all 3 flows spliced to be2", len(f))
	}
	for _, fr := range f {
		if parseFrame(t, fr).dstMAC != testBackendMAC(1) {
			t.Fatalf("a frame went to %v, want be2", parseFrame(t, fr).dstMAC)
		}
	}
	if n := h.s.C.HTTPErrors[503].Load(); n != 0 {
		t.Errorf("%d 503s during the upgrade, want none", n)
	}
	h.advance(h.s.cfg.HandoffTimeout)
	if len(h.s.ctl.Retired()) != 0 || !old.Sock.PeerClosed() {
		t.Errorf("retired connection still open after the handoff timeout")
	}
	if n := h.s.snapshot().Backends[1].Downs; n != 0 {
		t.Errorf("be2 counted %d downs, want 0: an upgrade is not a failure", n)
	}
}

// TestLeastConnections runs pool "both" with least-connections on the
// switch's own count of live flows: a connection goes to the back-end with
// the fewest, and a flow's end gives its back-end the next one.
func TestLeastConnections(t *testing.T) {
	h := newHarness(t)
	h.s.cfg.Pools[2].Policy = l7.PolicyLeastConnections
	h.s.pickers = newPickers(h.s.cfg)
	got, _ := h.targets(47000, 2) // be1, then be2: each has one
	if got != [2]int{1, 1} || h.s.loads.get(0) != 1 || h.s.loads.get(1) != 1 {
		t.Fatalf("two connections: %v, loads %d %d; want one each", got, h.s.loads.get(0), h.s.loads.get(1))
	}
	// The first flow (to be1) ends: a RST, then the linger.
	first := h.client(47000)
	first.isn = seqnum.Value(0x10000 * uint32(47000))
	first.off = len(bothReq)
	first.data(header.FlagRST, "")
	h.advance(h.s.cfg.Linger + time.Second)
	h.tx.take()
	if n := h.s.loads.get(0); n != 0 {
		t.Fatalf("be1's load after its flow ended: %d, want 0", n)
	}
	if got, _ := h.targets(47010, 1); got != [2]int{1, 0} {
		t.Errorf("next connection: %v, want be1 (0 flows against 1)", got)
	}
}

// TestBoundedLoadCountsLiveFlows: sequential requests for one path, each
// on its own connection that the client closes before the next one opens,
// stay on the path's back-end. The load a flow counts for is released when
// the client ends the connection, not when its entry is freed after the
// linger: a closed connection is no load, and counting it would move the
// path to another back-end and defeat cache affinity.
func TestBoundedLoadCountsLiveFlows(t *testing.T) {
	h := newHarness(t)
	h.s.cfg.Pools[2].Policy = l7.PolicyBoundedLoadHash
	h.s.cfg.Pools[2].Key = l7.HashKey{Kind: l7.KeyPath}
	h.s.pickers = newPickers(h.s.cfg)
	const req = "GET /cached/object HTTP/1.1\r\nHost: both.example\r\n\r\n"
	first := -1
	for i := range 6 {
		c := h.client(48000 + uint16(i))
		c.handshake()
		c.data(header.FlagPSH, req)
		h.pump()
		got := -1
		for b, a := range h.agents {
			if len(a.Msgs) > 0 {
				id, _, _ := h.handoff(b)
				h.answer(b, id, true)
				got = b
			}
		}
		if first < 0 {
			first = got
		}
		if got != first {
			t.Fatalf("request %d went to back-end %d, the first to %d: a closed connection counted as load", i, got, first)
		}
		c.data(header.FlagFIN, "") // the client closes; the entry lingers
		h.tx.take()
		if n := h.s.loads.get(got); n != 0 {
			t.Fatalf("request %d: back-end %d load %d after the client's FIN, want 0", i, got, n)
		}
	}
	h.advance(h.s.cfg.Linger + time.Second)
	if n := h.s.loads.get(first); n != 0 {
		t.Errorf("load %d after the entries were freed, want 0 (released once)", n)
	}
}
