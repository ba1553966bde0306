package shard

import (
	"strings"
	"testing"
	"time"

	"webswitch/handoff/control"
	"webswitch/l7"
	"webswitch/tcpfsm/header"
)

// TestReload applies a configuration that removes be2, adds be3 and sends
// web.example to it: the flow already spliced to be2 keeps going to be2's
// MAC, be2's control connection is retired, and the next web.example
// connection goes to be3.
func TestReload(t *testing.T) {
	const webReq = "GET / HTTP/1.1\r\nHost: web.example\r\n\r\n"
	h := newHarness(t)
	old := h.client(44000)
	old.splice(1, webReq) // to be2
	h.tx.take()

	cur := h.s.cfg
	next := *cur
	be3 := testBackend("be3", 2)
	next.Backends = []Backend{cur.Backends[0], be3}
	next.Pools = []l7.Pool{{Name: "static", Backends: []int{0}}, {Name: "web", Backends: []int{1}}}
	rt, err := l7.NewRouter([]l7.Rule{{Match: l7.Match{PathPrefix: "/static/"}, Pool: 0}, {Match: l7.Match{Host: "web.example"}, Pool: 1}})
	if err != nil {
		t.Fatal(err)
	}
	next.Router = rt
	merged := next
	merged.Backends, merged.Pools = mergeBackends(cur.Backends, next.Backends, next.Pools)
	if got := names(merged.Backends); got != "be1 be2(removed) be3" {
		t.Fatalf("merged back-ends %q, want be1 be2(removed) be3", got)
	}
	if got := merged.Pools[1].Backends; len(got) != 1 || got[0] != 2 {
		t.Fatalf("pool web renumbered to %v, want [2]", got)
	}
	h.s.nb.Grow(3)
	h.s.loads.grow(3)
	h.s.nb.Set(2, [6]byte{2, 0, 0, 0, 0, 23})
	h.s.apply(&merged)
	if len(h.s.ctl.Retired()) != 1 {
		t.Fatalf("after apply: %d retired control connections, want be2's", len(h.s.ctl.Retired()))
	}

	old.data(0, "") // the spliced flow goes on
	if f := h.tx.take(); len(f) != 1 || parseFrame(t, f[0]).dstMAC != testBackendMAC(1) {
		t.Fatalf("spliced flow after the reload: %d frames, want one to be2", len(f))
	}
	h.reconnect(2)
	c := h.client(44001)
	c.handshake()
	c.data(header.FlagPSH, webReq)
	id, _, _ := h.handoff(2)
	h.answer(2, id, true)
	c.data(0, "")
	if f := h.tx.take(); len(f) != 1 || parseFrame(t, f[0]).dstMAC != [6]byte{2, 0, 0, 0, 0, 23} {
		t.Fatalf("new connection after the reload: %d frames, want one to be3", len(f))
	}
	h.advance(h.s.cfg.HandoffTimeout)
	if len(h.s.ctl.Retired()) != 0 {
		t.Error("be2's retired connection still open after the handoff timeout")
	}
	h.advance(h.s.cfg.Control.ReconnectMax)
	if st := h.s.ctl.Conn(1).State(); st != control.StateIdle || len(h.agents) != 3 {
		t.Errorf("removed be2: control connection %v, %d agents dialled; want idle, never dialled again", st, len(h.agents))
	}
	if snap := h.s.snapshot(); len(snap.Backends) != 3 || snap.Backends[2].HandoffsOK != 1 {
		t.Errorf("back-end counters after the reload: %+v", snap.Backends)
	}
}

func names(bs []Backend) string {
	var out []string
	for _, b := range bs {
		n := b.Name
		if b.Removed {
			n += "(removed)"
		}
		out = append(out, n)
	}
	return strings.Join(out, " ")
}

// TestReloadTimeouts: a reload's timeouts apply to the flows already in
// the table, from the reload on: a shorter idle timeout frees an idle
// spliced flow at its new deadline (not at the one it was given under the
// old file), a longer one keeps it, and a shorter request timeout answers
// a waiting request head at once.
func TestReloadTimeouts(t *testing.T) {
	h := newHarness(t)
	const req = "GET /static/x HTTP/1.1\r\nHost: x\r\n\r\n"
	short := h.client(44100)
	short.splice(0, req)
	waiting := h.client(44101)
	waiting.handshake()
	waiting.data(header.FlagPSH, "GET /static/x HTTP/1.1\r\n")
	h.tx.take()

	next := *h.s.cfg
	next.IdleTimeout = 10 * time.Second
	next.RequestTimeout = 2 * time.Second
	h.s.apply(&next)
	h.advance(3 * time.Second)
	if body, _ := waiting.response(h.tx.take()); !strings.HasPrefix(string(body), "HTTP/1.1 408 ") {
		t.Errorf("waiting head 3 s after a reload to request_timeout 2s: answered %q, want 408", body)
	}
	h.advance(8 * time.Second)
	if n := h.s.C.SplicedFlows.Load(); n != 0 {
		t.Errorf("%d spliced flows 11 s after a reload to idle_timeout 10s, want 0", n)
	}

	h.tx.take() // the 408's retransmissions: its client never answers
	long := h.client(44102)
	long.splice(0, req)
	longer := *h.s.cfg
	longer.IdleTimeout = 600 * time.Second
	h.s.apply(&longer)
	h.advance(400 * time.Second)
	if n := h.s.C.SplicedFlows.Load(); n != 1 {
		t.Errorf("%d spliced flows 400 s after a reload to idle_timeout 600s, want the one", n)
	}
}
