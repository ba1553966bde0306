package shard

import (
	"errors"
	"testing"
	"time"

	"webswitch/handoff"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

// owns answers a LOOKUP: state for the client port given, no socket for
// the others.
func owns(port uint16, o handoff.Owner) func(handoff.FlowID) handoff.Owner {
	return func(id handoff.FlowID) handoff.Owner {
		if id.Client.Port() == port {
			return o
		}
		return handoff.Owner{}
	}
}

var established = handoff.Owner{State: handoff.SockEstablished, IdleMS: 200}

// spliceElsewhere makes c a client whose connection a back-end holds but
// this shard never saw (its switch restarted): an ACK number far past the
// handshake, as after a response.
func spliceElsewhere(c *client) {
	c.iss = 777000
	c.off = 40
}

// forwarded checks that the shard sent one frame, to back-end b, and
// returns it.
func forwarded(t *testing.T, h *harness, b int) sentFrame {
	t.Helper()
	out := h.tx.take()
	if len(out) != 1 {
		t.Fatalf("%d frames sent, want 1 to back-end %d", len(out), b)
	}
	f := parseFrame(t, out[0])
	if f.dstMAC != testBackendMAC(b) || f.dport != 80 {
		t.Fatalf("frame to %v port %d, want back-end %d port 80", f.dstMAC, f.dport, b)
	}
	return f
}

// askedAbout sends a bare ACK of a connection the shard never saw, from
// client port port, and returns the client and the LOOKUP each agent got.
func askedAbout(t *testing.T, h *harness, port uint16) (*client, [2]handoff.Msg) {
	t.Helper()
	c := h.client(port)
	spliceElsewhere(c)
	c.data(0, "")
	return c, [2]handoff.Msg{oneLookup(t, h, 0, port), oneLookup(t, h, 1, port)}
}

// oneLookup checks that back-end b's agent got exactly one LOOKUP, for the
// given client ports in order, and returns it.
func oneLookup(t *testing.T, h *harness, b int, ports ...uint16) handoff.Msg {
	t.Helper()
	ls := h.lookups(b)
	if len(ls) != 1 {
		t.Fatalf("agent %d got %d LOOKUPs, want 1", b, len(ls))
	}
	ids, err := handoff.DecodeLookupBody(ls[0].Body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(ports) {
		t.Fatalf("LOOKUP asks for %d connections, want %d", len(ids), len(ports))
	}
	for i, id := range ids {
		if id.Client.Port() != ports[i] || id.VIP.Port() != 80 || id.Client.Addr().As4() != testClientIP || id.VIP.Addr().As4() != testVIP {
			t.Fatalf("LOOKUP entry %d: %v", i, id)
		}
	}
	return ls[0]
}

// TestRecoverFromOwner: a segment of a connection the shard does not know
// is held and asked about; when the agent that holds it says so, the flow
// is spliced to that back-end, the held segment forwarded, and later
// segments go straight through.
func TestRecoverFromOwner(t *testing.T) {
	h := newHarness(t)
	c := h.client(41000)
	spliceElsewhere(c)
	c.data(header.FlagPSH, "GET /next HTTP/1.1\r\n\r\n")
	if out := h.tx.take(); len(out) != 0 {
		t.Fatalf("sent %d frames before the agents answered, want 0 (held)", len(out))
	}
	m0, m1 := oneLookup(t, h, 0, 41000), oneLookup(t, h, 1, 41000)
	h.owners(0, m0, owns(0, handoff.Owner{}))
	h.owners(1, m1, owns(41000, established))
	h.advance(0)
	forwarded(t, h, 1) // the held segment
	c.data(0, "")
	forwarded(t, h, 1)
	if ls := h.lookups(0); len(ls) != 0 {
		t.Errorf("next segment asked about again: %d LOOKUPs", len(ls))
	}
	snap := h.s.snapshot()
	if snap.Recovered["lookup"] != 1 || snap.SplicedFlows != 1 || snap.RecoveryAsked != 1 || snap.RecoveryQueries != 2 || snap.RecoveryConflicts != 0 {
		t.Errorf("counters: %+v", snap)
	}
	if n := h.s.loads.get(1); n != 1 {
		t.Errorf("back-end 1 load %d, want 1", n)
	}
}

// TestRecoverTwoOwners: when two agents claim a connection, the socket
// that still sends wins over one closing its side (FIN_WAIT1), and the
// conflict is counted.
func TestRecoverTwoOwners(t *testing.T) {
	h := newHarness(t)
	_, m := askedAbout(t, h, 41001)
	h.owners(0, m[0], owns(41001, established))
	h.owners(1, m[1], owns(41001, handoff.Owner{State: handoff.SockFinWait1, IdleMS: 1}))
	h.advance(0)
	forwarded(t, h, 0) // ESTABLISHED wins
	if n := h.s.C.RecoveryConflicts.Load(); n != 1 {
		t.Errorf("conflicts %d, want 1", n)
	}
}

// TestRecoverStaleSocket: a socket past the connection's end (TIME_WAIT,
// FIN_WAIT2) is no owner: it may be left from an earlier connection on the
// same port. A client that reused the port and whose request was lost
// with its switch (or its back-end) starts again from its cookie, and
// does not end at the stale socket.
func TestRecoverStaleSocket(t *testing.T) {
	h := newHarness(t)
	c := h.client(41010)
	c.handshake()
	req := "GET / HTTP/1.1\r\nHost: both.example\r\n\r\n"
	h2 := newHarness(t) // the switch restarted before the handoff
	c.h = h2
	c.send(c.isn+1, c.iss+1, header.FlagPSH|header.FlagACK, req)
	m := [2]handoff.Msg{oneLookup(t, h2, 0, 41010), oneLookup(t, h2, 1, 41010)}
	h2.owners(0, m[0], owns(41010, handoff.Owner{State: handoff.SockTimeWait, IdleMS: handoff.NoIdle}))
	h2.owners(1, m[1], owns(41010, handoff.Owner{State: handoff.SockFinWait2, IdleMS: 40000}))
	h2.advance(0)
	h2.pump()
	if n := h2.s.C.Recovered[RecoveredCookie].Load(); n != 1 {
		t.Fatalf("recovered by cookie %d, want 1 (the stale sockets own nothing)", n)
	}
	if n := h2.s.C.Recovered[RecoveredLookup].Load(); n != 0 {
		t.Errorf("recovered by lookup %d, want 0", n)
	}
}

// TestRecoverNoOwner: when every agent says no, a bare ACK gets a RST (as
// a connection that does not exist), the connection is remembered as
// unowned for negativeTTL (its next segments are dropped without a
// LOOKUP), and asked about again after it.
func TestRecoverNoOwner(t *testing.T) {
	h := newHarness(t)
	c := h.client(41002)
	spliceElsewhere(c)
	c.data(0, "")
	h.noOwners()
	if rst := resets(t, h.tx.take()); len(rst) != 1 || rst[0].seq != c.iss+1 {
		t.Fatalf("resets %+v, want one with the ACK's number", rst)
	}
	c.data(0, "")
	if ls := h.lookups(0); len(ls) != 0 || h.s.C.Drops[DropNoOwner].Load() != 1 {
		t.Fatalf("within negativeTTL: %d LOOKUPs, no_owner drops %d; want 0 and 1", len(ls), h.s.C.Drops[DropNoOwner].Load())
	}
	h.advance(negativeTTL)
	c.data(0, "")
	oneLookup(t, h, 0, 41002)
}

// TestRecoverSilentAgent: an agent that does not answer may own the
// connection: after recovery_timeout the held segment is dropped without a
// RST, and the next segment asks again.
func TestRecoverSilentAgent(t *testing.T) {
	h := newHarness(t)
	c, m := askedAbout(t, h, 41003)
	h.owners(0, m[0], owns(0, handoff.Owner{})) // be2 never answers
	h.advance(h.s.cfg.RecoveryTimeout - time.Millisecond)
	if n := len(h.s.rec.index); n != 1 {
		t.Fatalf("before the timeout: %d connections being asked about, want 1", n)
	}
	h.advance(time.Millisecond)
	if out := h.tx.take(); len(out) != 0 {
		t.Fatalf("after the timeout: %d frames sent, want none", len(out))
	}
	if d, u := h.s.C.Drops[DropNoOwner].Load(), h.s.C.RecoveryUnanswered.Load(); d != 1 || u != 1 {
		t.Errorf("no_owner drops %d, unanswered %d; want 1 and 1", d, u)
	}
	c.data(0, "")
	oneLookup(t, h, 0, 41003)
}

// TestRecoverAgentErrAndLoss: an ERR for a LOOKUP, or the loss of the
// control connection it went on, counts as no answer from that agent.
func TestRecoverAgentErrAndLoss(t *testing.T) {
	h := newHarness(t)
	_, m := askedAbout(t, h, 41004)
	if err := h.agents[0].Sess.SendErr(m[0].ID, handoff.ErrCodeBusy, "test"); err != nil {
		t.Fatal(err)
	}
	h.pump()
	h.s.ctl.Fail(1, errors.New("test: cut"))
	h.advance(0)
	if n := len(h.s.rec.index); n != 0 || h.s.C.RecoveryUnanswered.Load() != 2 || h.s.C.Drops[DropNoOwner].Load() != 1 {
		t.Errorf("left %d, unanswered %d, no_owner %d; want 0, 2, 1", n, h.s.C.RecoveryUnanswered.Load(), h.s.C.Drops[DropNoOwner].Load())
	}
	if rst := resets(t, h.tx.take()); len(rst) != 0 {
		t.Errorf("sent %d RSTs, want none: an agent may own it", len(rst))
	}
}

// TestRecoverPendingHandoff: the switch never acknowledges a complete
// request head itself (the re-created socket does), so a request it had
// not handed off when it died is retransmitted by the client; a new switch
// with the same cookie key asks the agents, none holds it, and the request
// is handed off again.
func TestRecoverPendingHandoff(t *testing.T) {
	h := newHarness(t)
	c := h.client(41005)
	c.handshake()
	req := "GET /static/x HTTP/1.1\r\nHost: x\r\n\r\n"
	c.data(header.FlagPSH, req)
	if out := h.tx.take(); len(out) != 0 {
		t.Fatalf("the complete head was answered with %d frames, want none (no ACK)", len(out))
	}
	h.handoff(0) // sent, never answered: the switch dies

	h2 := newHarness(t) // same cookie key and clock
	c.h = h2
	c.send(c.isn+1, c.iss+1, header.FlagPSH|header.FlagACK, req) // the client's retransmission
	h2.noOwners()
	if _, _, got := h2.handoff(0); string(got) != req {
		t.Fatalf("handed off %q, want %q", got, req)
	}
	if n := h2.s.C.Recovered[RecoveredCookie].Load(); n != 1 {
		t.Errorf("recovered by cookie %d, want 1", n)
	}
}

// TestRecoverMistakenHandshake: after a restart, a client's bare ACK of
// the re-created socket's window probe (ACK = ISS+1) looks like the end
// of a handshake; its next segment, acknowledging data the switch never
// sent, shows it is a back-end's: the shard forgets it and asks.
func TestRecoverMistakenHandshake(t *testing.T) {
	h := newHarness(t)
	c := h.client(41006)
	c.handshake()
	if n := h.s.C.Flows.Load(); n != 1 {
		t.Fatalf("flows %d, want 1", n)
	}
	c.send(c.isn+1, c.iss.Add(1+5000), header.FlagACK, "")
	m := oneLookup(t, h, 1, 41006)
	h.owners(1, m, owns(41006, established))
	oneLookup(t, h, 0, 41006) // unanswered yet: decided at the timeout
	h.advance(h.s.cfg.RecoveryTimeout)
	forwarded(t, h, 1)
	if n := h.s.C.ActiveFlows.Load(); n != 1 {
		t.Errorf("active flows %d, want 1", n)
	}
}

// TestRecoverBounds: distinct unknown connections beyond the token
// bucket's burst are dropped and counted; those asked go 64 to a LOOKUP.
func TestRecoverBounds(t *testing.T) {
	h := newHarness(t)
	burst := int(max(float64(h.s.cfg.RecoveryRate)/10, handoff.MaxLookup))
	for p := range uint16(3 * burst) {
		c := h.client(20000 + p)
		spliceElsewhere(c)
		c.data(0, "")
	}
	ls := h.lookups(0)
	asked := 0
	for _, m := range ls {
		ids, err := handoff.DecodeLookupBody(m.Body, nil)
		if err != nil {
			t.Fatal(err)
		}
		asked += len(ids)
	}
	if want := (burst + handoff.MaxLookup - 1) / handoff.MaxLookup; len(ls) != want || asked != burst {
		t.Errorf("%d LOOKUPs for %d connections, want %d for %d", len(ls), asked, want, burst)
	}
	if n := h.s.C.Drops[DropRecoveryRate].Load(); n != uint64(2*burst) {
		t.Errorf("recovery_rate drops %d, want %d", n, 2*burst)
	}
	if n := h.s.C.Recovering.Load(); n != int64(burst) {
		t.Errorf("recovering gauge %d, want %d", n, burst)
	}
	// A second later the bucket is full again.
	h.advance(time.Second)
	c := h.client(30000)
	spliceElsewhere(c)
	c.data(0, "")
	if n := h.s.C.RecoveryAsked.Load(); n != uint64(burst+1) {
		t.Errorf("asked %d after a second, want %d", n, burst+1)
	}
}

// TestRecoverSegmentsHeld: while a connection is asked about, its later
// segments replace the held one (the latest is forwarded), and no second
// LOOKUP goes out.
func TestRecoverSegmentsHeld(t *testing.T) {
	h := newHarness(t)
	c := h.client(41007)
	spliceElsewhere(c)
	c.data(0, "")
	c.send(c.isn.Add(1+seqnum.Size(c.off)), c.iss.Add(9), header.FlagACK, "")
	m0, m1 := oneLookup(t, h, 0, 41007), oneLookup(t, h, 1, 41007)
	h.owners(0, m0, owns(41007, established))
	h.owners(1, m1, owns(0, handoff.Owner{}))
	h.advance(0)
	if f := forwarded(t, h, 0); f.ack != c.iss.Add(9) {
		t.Fatalf("forwarded the segment with ACK %v, want the latest (ACK %v)", f.ack, c.iss.Add(9))
	}
}

// TestRecoverNoAllocs: recovering a connection (its segment held, the
// LOOKUP, the answers, the flow spliced and the segment forwarded) and
// its end allocate nothing once warm.
func TestRecoverNoAllocs(t *testing.T) {
	h := newHarness(t)
	c := h.client(41100)
	spliceElsewhere(c)
	body := make([]byte, 0, handoff.OwnerLen)
	cycle := func() {
		c.port++
		c.data(0, "")
		h.advance(0) // the LOOKUPs leave
		for b, a := range h.agents {
			for _, m := range a.Msgs {
				o := handoff.Owner{}
				if b == 1 {
					o = established
				}
				body = handoff.AppendOwner(body[:0], o)
				if err := a.Sess.Send(handoff.MsgOwners, m.ID, body); err != nil {
					t.Fatal(err)
				}
			}
			a.Reset()
		}
		h.pump()
		h.advance(0) // decided: spliced, the segment forwarded
		c.data(header.FlagFIN, "")
		h.tx.take()
		h.advance(h.s.cfg.Linger + wheelTick)
	}
	if n := testing.AllocsPerRun(200, cycle); n != 0 {
		t.Errorf("recovered connection: %v allocations", n)
	}
	if got := h.s.C.Recovered[RecoveredLookup].Load(); got != 201 {
		t.Errorf("recovered %d, want 201", got)
	}
	if n := h.s.C.ActiveFlows.Load(); n != 0 {
		t.Errorf("%d flows left", n)
	}
}

// BenchmarkRecover: the switch's side of recovering connections, 64 to a
// LOOKUP (one full batch per iteration), with two agents answering at
// once over in-memory pipes: hold, LOOKUP, answers, splice, forward.
func BenchmarkRecover(b *testing.B) {
	h := newHarness(b)
	h.s.cfg.RecoveryRate = 1 << 30
	h.s.cfg.MaxFlows = 1 << 20
	h.s.tab = newTable(h.s.cfg.MaxFlows, h.s.cfg.FSM.BufferSize(), h.s.cfg.FSM.BufferSize()+frameOverhead)
	c := h.client(1)
	spliceElsewhere(c)
	body := make([]byte, 0, handoff.MaxLookup*handoff.OwnerLen)
	b.ReportAllocs()
	for b.Loop() {
		if c.port > 0xFFFF-handoff.MaxLookup {
			// Ports run out: forget the flows (rarely: amortized).
			for i := range h.s.tab.flows {
				if h.s.tab.flows[i].state != flowInvalid {
					h.s.free(int32(i))
				}
			}
			c.port = 1
		}
		for range handoff.MaxLookup {
			c.port++
			c.data(0, "")
		}
		h.advance(0)
		for be, a := range h.agents {
			for _, m := range a.Msgs {
				body = body[:0]
				for k := range handoff.MaxLookup {
					o := handoff.Owner{}
					if k%2 == be {
						o = established
					}
					body = handoff.AppendOwner(body, o)
				}
				a.Sess.Send(handoff.MsgOwners, m.ID, body)
			}
			a.Reset()
		}
		h.pump()
		h.advance(0)
		h.tx.take()
	}
	b.ReportMetric(float64(b.N*handoff.MaxLookup)/b.Elapsed().Seconds(), "conns/s")
}

// TestLostHandoffRecovered: when the control connection breaks while a
// HANDOFF waits for its answer, the switch cannot tell whether the agent
// made the socket: it forgets the flow, sends the client nothing, and the
// client's retransmitted request is asked about. Here the agent had made
// none (it is down; the other says no): the request is handed off again,
// to the other back-end of the pool.
func TestLostHandoffRecovered(t *testing.T) {
	h := newHarness(t)
	c := h.client(41200)
	c.handshake()
	req := "GET / HTTP/1.1\r\nHost: both.example\r\n\r\n"
	c.data(header.FlagPSH, req)
	h.pump()
	first := 0
	if len(h.agents[1].Msgs) == 1 {
		first = 1
	}
	h.handoff(first)
	h.s.ctl.Fail(first, errors.New("test: cut"))
	if out := h.tx.take(); len(out) != 0 || h.s.C.ActiveFlows.Load() != 0 {
		t.Fatalf("after the loss: %d frames sent, %d flows; want none: the flow is forgotten", len(out), h.s.C.ActiveFlows.Load())
	}
	c.send(c.isn+1, c.iss+1, header.FlagPSH|header.FlagACK, req) // the client's retransmission
	h.noOwners()
	if _, _, got := h.handoff(1 - first); string(got) != req {
		t.Fatalf("handed off again %q, want %q", got, req)
	}
}

// TestHandshakeAcrossRestart: a handshake begun before a restart (or on
// another switch with the same secret) completes after it: the last ACK's
// cookie is checked, with no LOOKUP.
func TestHandshakeAcrossRestart(t *testing.T) {
	h := newHarness(t)
	c := h.client(41400)
	c.send(c.isn, 0, header.FlagSYN, "")
	out := h.tx.take()
	if len(out) != 1 {
		t.Fatalf("SYN answered with %d frames", len(out))
	}
	c.iss = parseFrame(t, out[0]).seq

	h2 := newHarness(t) // same cookie key, as shard.cookieKey derives it from the secret
	c.h = h2
	h2.advance(time.Second)
	c.send(c.isn+1, c.iss+1, header.FlagACK, "")
	if n := h2.s.C.Flows.Load(); n != 1 {
		t.Fatalf("the new switch accepted %d connections, want 1", n)
	}
	if ls := h2.lookups(0); len(ls) != 0 {
		t.Errorf("%d LOOKUPs for a handshake's last ACK, want none", len(ls))
	}
	c.data(header.FlagPSH, "GET /static/x HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, _, req := h2.handoff(0); len(req) == 0 {
		t.Error("not handed off")
	}
}

// TestRecoverWhileStarting: a segment that comes before the agents'
// first control connections are up (a switch just started) is held, not
// dropped, and asked about once they are: every agent's answer counts.
func TestRecoverWhileStarting(t *testing.T) {
	h := newStartingHarness(t)
	c := h.client(41500)
	spliceElsewhere(c)
	c.data(0, "")
	if n := h.s.C.Drops[DropNoAgent].Load(); n != 0 || len(h.s.rec.index) != 1 {
		t.Fatalf("no_agent drops %d, held %d; want 0 and 1", n, len(h.s.rec.index))
	}
	h.advance(0) // the agents connect; the LOOKUP waits for them
	m := [2]handoff.Msg{oneLookup(t, h, 0, 41500), oneLookup(t, h, 1, 41500)}
	h.owners(0, m[0], owns(0, handoff.Owner{}))
	h.owners(1, m[1], owns(41500, established))
	h.advance(0)
	forwarded(t, h, 1)
}

// TestRecoverDeadConnection: data of a connection no agent holds and no
// cookie starts (the tail of a request head whose start a dead switch had
// acknowledged) is dropped the first time (it may be a segment that
// overtook its connection's first), and reset when the client sends it
// again after negativeTTL and the agents still say no: the client is told,
// not left retransmitting until its TCP gives up.
func TestRecoverDeadConnection(t *testing.T) {
	h := newHarness(t)
	c := h.client(41600)
	c.iss = 555000 // a switch that died acknowledged the head's start
	c.off = 700
	c.data(header.FlagPSH, "Host: x\r\n\r\n")
	h.noOwners()
	if out := h.tx.take(); len(out) != 0 {
		t.Fatalf("first time: %d frames sent, want none", len(out))
	}
	h.advance(negativeTTL)
	c.data(header.FlagPSH, "Host: x\r\n\r\n")
	h.noOwners()
	if rst := resets(t, h.tx.take()); len(rst) != 1 || rst[0].seq != c.iss+1 {
		t.Fatalf("second time: resets %+v, want one with the segment's ACK number", rst)
	}
}
