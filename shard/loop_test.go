package shard

import (
	"testing"
	"time"

	"webswitch/handoff"
	"webswitch/internal/mono"
	"webswitch/tcpfsm/header"
)

// TestRound runs a connection through the loop itself: client frames
// arrive on the in-memory link, the agent's answer on an in-memory control
// connection, and each Shard.round reads both, runs the timers and sends
// what it produced.
func TestRound(t *testing.T) {
	h := newHarness(t)
	const req = "GET /static/a HTTP/1.1\r\nHost: x\r\n\r\n"
	c := h.client(45000)
	c.viaLink = true

	c.send(c.isn, 0, header.FlagSYN, "")
	if f := h.tx.take(); len(f) != 0 {
		t.Fatalf("%d frames sent before the loop ran", len(f))
	}
	h.s.round()
	out := h.tx.take()
	if len(out) != 1 || parseFrame(t, out[0]).flags != header.FlagSYN|header.FlagACK {
		t.Fatalf("round after a SYN sent %d frames, want a SYN-ACK", len(out))
	}
	c.iss = parseFrame(t, out[0]).seq
	c.send(c.isn+1, c.iss+1, header.FlagACK, "")
	c.data(header.FlagPSH, req)
	h.s.round()
	h.tx.take() // the ACK of the request
	id, st, request := h.handoff(0)
	if string(request) != req || st.Client.Port() != 45000 {
		t.Fatalf("HANDOFF of %q from port %d, want the request from 45000", request, st.Client.Port())
	}
	if err := h.agents[0].Sess.Send(handoff.MsgOK, id, nil); err != nil {
		t.Fatal(err)
	}
	h.pump() // the agent's OK into the switch's end of the pipe
	c.data(0, "")
	h.s.round() // the frame first (queued: the flow is handing off), then the OK, which sends the queue to be1
	out = h.tx.take()
	if len(out) != 1 || parseFrame(t, out[0]).dstMAC != testBackendMAC(0) {
		t.Fatalf("round after the OK sent %d frames, want the client's frame forwarded to be1", len(out))
	}
	if mono.Time(h.s.C.Round.Load()) != h.now {
		t.Errorf("heartbeat %d, want the round's time %d", h.s.C.Round.Load(), h.now)
	}

	// The timers run in the round: the flow ends after the client's FIN
	// and the linger.
	c.data(header.FlagFIN, "")
	h.s.round()
	h.tx.take()
	h.now = h.now.Add(h.s.cfg.Linger + time.Second)
	h.s.round()
	if n := h.s.C.ActiveFlows.Load(); n != 0 {
		t.Errorf("%d flows after the FIN and the linger, want 0", n)
	}
}
