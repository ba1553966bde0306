package shard

import (
	"bytes"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"webswitch/handoff"
	"webswitch/neigh"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

// TestSpliceLifecycle follows one connection through the shard: handshake,
// a request in two segments, the handoff with the right state, a frame
// queued during the handoff, splicing with a MAC rewrite only, the client's
// FIN and the flow's expiry.
func TestSpliceLifecycle(t *testing.T) {
	h := newHarness(t)
	c := h.client(40000)
	c.handshake()
	const req = "GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
	c.data(0, req[:10])
	if out := h.tx.take(); len(out) != 1 || parseFrame(t, out[0]).ack != c.isn.Add(11) {
		t.Fatalf("first part of the request: %d frames, want its ACK", len(out))
	}
	c.data(header.FlagPSH, req[10:])
	id, st, got := h.handoff(0)
	if string(got) != req {
		t.Errorf("handed-off request = %q", got)
	}
	want := handoff.ConnState{
		Client: netip.AddrPortFrom(netip.AddrFrom4(testClientIP), 40000),
		VIP:    netip.AddrPortFrom(netip.AddrFrom4(testVIP), 80),
		SndISN: uint32(c.iss), SndNxt: uint32(c.iss + 1),
		RcvIRS: uint32(c.isn), RcvNxt: uint32(c.isn.Add(1 + seqnum.Size(len(req)))),
		SndWnd: 1000 << 6, RcvWnd: st.RcvWnd,
		MSS: 1460, SndWScale: 6, RcvWScale: advertisedWScale, WScaleOK: true, SACKOK: true,
	}
	if st != want {
		t.Errorf("handoff state:\n got %+v\nwant %+v", st, want)
	}
	if n := len(h.tx.take()); n != 0 {
		t.Errorf("the switch sent %d frames for the complete request, want none (the back-end ACKs it)", n)
	}

	// A frame during the handoff waits for the agent's answer.
	c.data(0, "")
	if n := len(h.tx.take()); n != 0 {
		t.Fatalf("frame during the handoff: %d frames sent, want it queued", n)
	}
	h.answer(0, id, true)
	out := h.tx.take()
	if len(out) != 1 {
		t.Fatalf("after OK: %d frames, want the queued one", len(out))
	}
	f := parseFrame(t, out[0])
	if f.dstMAC != testBackendMAC(0) || f.srcMAC != testSwitchMAC || f.src != testClientIP || f.dst != testVIP || f.ack != c.iss+1 {
		t.Errorf("queued frame forwarded as %+v", f)
	}

	// Spliced: every frame goes on, unchanged but for the MACs.
	c.data(header.FlagFIN, "")
	out = h.tx.take()
	if len(out) != 1 {
		t.Fatalf("spliced FIN: %d frames", len(out))
	}
	if f := parseFrame(t, out[0]); f.dstMAC != testBackendMAC(0) || f.flags != header.FlagFIN|header.FlagACK || f.seq != c.isn.Add(1+seqnum.Size(len(req))) {
		t.Errorf("spliced FIN forwarded as %+v", f)
	}
	snap := h.s.snapshot()
	if snap.HandoffsOK != 1 || snap.FramesForwarded != 2 || snap.SplicedFlows != 1 || snap.ActiveFlows != 1 {
		t.Errorf("counters: %+v", snap)
	}
	// After the FIN the flow lingers, then goes.
	h.advance(h.s.cfg.Linger / 2)
	if h.s.C.ActiveFlows.Load() != 1 {
		t.Fatal("flow freed before the linger time")
	}
	h.advance(h.s.cfg.Linger)
	if n, a := len(h.s.tab.index), h.s.C.ActiveFlows.Load(); n != 0 || a != 0 {
		t.Errorf("after linger: %d flows in the table, %d active", n, a)
	}
}

// TestHalfCloseReplaysFIN: a client that sends its request and its FIN
// together (shutdown after writing) gets the request handed off; the
// back-end is then sent that FIN, which its re-created socket could not
// carry.
func TestHalfCloseReplaysFIN(t *testing.T) {
	h := newHarness(t)
	c := h.client(40001)
	c.handshake()
	const req = "GET /static/b HTTP/1.0\r\n\r\n"
	c.data(header.FlagFIN|header.FlagPSH, req)
	out := h.tx.take()
	if len(out) != 0 {
		t.Fatalf("request+FIN: %d frames, want none (the back-end's socket acknowledges both)", len(out))
	}
	id, st, got := h.handoff(0)
	if string(got) != req || st.RcvNxt != uint32(c.isn.Add(1+seqnum.Size(len(req)))) {
		t.Fatalf("handoff: request %q, RcvNxt %d", got, st.RcvNxt)
	}
	h.answer(0, id, true)
	out = h.tx.take()
	if len(out) != 1 {
		t.Fatalf("after OK: %d frames, want the replayed FIN", len(out))
	}
	f := parseFrame(t, out[0])
	want := sentFrame{
		dstMAC: testBackendMAC(0), srcMAC: testSwitchMAC, src: testClientIP, dst: testVIP,
		sport: 40001, dport: 80, seq: seqnum.Value(st.RcvNxt), ack: c.iss + 1,
		flags: header.FlagFIN | header.FlagACK, window: c.window, payload: f.payload,
	}
	if len(f.payload) != 0 || f.dstMAC != want.dstMAC || f.srcMAC != want.srcMAC || f.src != want.src || f.dst != want.dst ||
		f.sport != want.sport || f.dport != want.dport || f.seq != want.seq || f.ack != want.ack || f.flags != want.flags || f.window != want.window {
		t.Errorf("replayed FIN:\n got %+v\nwant %+v", f, want)
	}
	if n := h.s.C.FINsReplayed.Load(); n != 1 {
		t.Errorf("FINsReplayed = %d", n)
	}
}

// TestSwitchAnswers: every case where the switch answers the client
// itself, each with its status, a FIN after it, and its counter.
func TestSwitchAnswers(t *testing.T) {
	tests := []struct {
		name   string
		req    string
		before func(h *harness)                    // before the request
		after  func(h *harness, t *testing.T) bool // after it; false: no answer expected yet
		status int
	}{
		{name: "malformed", req: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400},
		{name: "no rule", req: "GET / HTTP/1.1\r\nHost: other.example\r\n\r\n", status: 404},
		{name: "head too large", req: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 1100) + "\r\n\r\n", status: 431},
		{name: "back-end not resolved", req: "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n", status: 503,
			before: func(h *harness) { h.s.nb = neigh.NewTable(2) }},
		{name: "control connection down", req: "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n", status: 503,
			before: func(h *harness) { h.s.ctl.Fail(0, errors.New("test: cut")) }},
		{name: "agent refuses", req: "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n", status: 503,
			after: func(h *harness, t *testing.T) bool {
				id, _, _ := h.handoff(0)
				h.answer(0, id, false)
				return true
			}},
		{name: "handoff timeout", req: "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n", status: 504,
			after: func(h *harness, t *testing.T) bool {
				h.handoff(0)
				h.advance(h.s.cfg.HandoffTimeout + wheelTick)
				return true
			}},
		{name: "request timeout", req: "GET /static/ HTTP/1.1\r\n", status: 408,
			after: func(h *harness, t *testing.T) bool {
				h.tx.take() // the ACK of the partial head
				h.advance(h.s.cfg.RequestTimeout + wheelTick)
				return true
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.before != nil {
				tt.before(h)
			}
			c := h.client(40002)
			c.handshake()
			c.data(header.FlagPSH, tt.req)
			if tt.after != nil {
				tt.after(h, t)
			}
			body, fin := c.response(h.tx.take())
			want := "HTTP/1.1 " + strconv.Itoa(tt.status) + " "
			if !strings.HasPrefix(string(body), want) || !fin {
				t.Fatalf("answer %q (FIN %v), want %q... and a FIN", body, fin, want)
			}
			if n := h.s.C.HTTPErrors[tt.status].Load(); n != 1 {
				t.Errorf("HTTPErrors[%d] = %d, want 1", tt.status, n)
			}
			// The client acknowledges the answer and closes: the flow goes.
			c.send(c.isn.Add(1+seqnum.Size(c.off)), c.iss.Add(1+seqnum.Size(len(body)+1)), header.FlagFIN|header.FlagACK, "")
			if n := len(h.s.tab.index); n != 0 {
				t.Errorf("%d flows left after the close", n)
			}
			if n := h.s.C.ActiveFlows.Load(); n != 0 {
				t.Errorf("ActiveFlows = %d after the close", n)
			}
		})
	}
}

// TestDrops: frames the shard refuses, each counted by kind; those of a
// connection that does not exist (no agent holds it) get a RST.
func TestDrops(t *testing.T) {
	tests := []struct {
		name  string
		send  func(c *client)
		drop  Drop
		reset bool
	}{
		{"bad TCP checksum", func(c *client) {
			c.badChecksum = true
			c.send(c.isn, 0, header.FlagSYN, "")
		}, DropTCPChecksum, false},
		{"ACK without a valid cookie", func(c *client) { c.send(c.isn+1, 12345, header.FlagACK, "") }, DropNoFlow, true},
		{"frame to another host's MAC", func(c *client) {
			c.otherHost = true // a bridge flooded it: another switch's
			c.send(c.isn, 0, header.FlagSYN, "")
		}, DropOtherHost, false},
		{"data without a valid cookie", func(c *client) { c.send(c.isn+1, 12345, header.FlagACK, "GET") }, DropNoFlow, false},
		{"FIN of no connection", func(c *client) { c.send(c.isn+1, 12345, header.FlagFIN, "") }, DropNoFlow, false},
		{"table full", func(c *client) {
			// Spliced flows: none waiting for its request head that a full
			// table could evict (evict_test.go).
			for p := range uint16(c.h.s.cfg.MaxFlows) {
				o := c.h.client(1000 + p)
				o.splice(0, "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n")
			}
			c.handshake() // the SYN-ACK is stateless; the ACK finds the table full
		}, DropTableFull, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c := h.client(40003)
			tt.send(c)
			h.noOwners() // segments of unknown connections are asked about first
			if n := h.s.C.Drops[tt.drop].Load(); n != 1 {
				t.Errorf("drops[%v] = %d, want 1", tt.drop, n)
			}
			out := h.tx.take()
			resets := 0
			for _, b := range out {
				if parseFrame(t, b).flags&header.FlagRST != 0 {
					resets++
				}
			}
			if want := map[bool]int{false: 0, true: 1}[tt.reset]; resets != want || len(out) != want {
				t.Errorf("sent %d frames with %d RSTs, want %d RST", len(out), resets, want)
			}
		})
	}
}

// TestSplicedIdleTimeout: a spliced flow that sends nothing goes after the
// idle timeout, and not before.
func TestSplicedIdleTimeout(t *testing.T) {
	h := newHarness(t)
	c := h.client(40004)
	c.splice(1, "GET / HTTP/1.1\r\nHost: web.example\r\n\r\n")
	h.advance(h.s.cfg.IdleTimeout - time.Second)
	c.data(0, "") // activity: the idle timer restarts
	if f := h.tx.take(); len(f) != 1 || parseFrame(t, f[0]).dstMAC != testBackendMAC(1) {
		t.Fatalf("spliced frame not forwarded to be2")
	}
	h.advance(h.s.cfg.IdleTimeout - time.Second)
	if h.s.C.SplicedFlows.Load() != 1 {
		t.Fatal("flow expired while active")
	}
	h.advance(2 * time.Second)
	if h.s.C.SplicedFlows.Load() != 0 || len(h.s.tab.index) != 0 {
		t.Error("idle flow not expired")
	}
}

// TestPortReuse: a SYN on the tuple of a spliced flow starts a new
// connection, whether the switch saw the old one end (the client's FIN)
// or not (its back-end reset it, or died: the reset went to the client
// only).
func TestPortReuse(t *testing.T) {
	for _, fin := range []bool{true, false} {
		h := newHarness(t)
		c := h.client(40005)
		c.splice(0, "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n")
		if fin {
			c.data(header.FlagFIN, "")
		}
		h.tx.take()
		c.isn += 1 << 20
		c.off = 0
		c.handshake()
		c.data(header.FlagPSH, "GET / HTTP/1.1\r\nHost: web.example\r\n\r\n")
		if _, _, req := h.handoff(1); !bytes.HasPrefix(req, []byte("GET / ")) {
			t.Errorf("FIN seen %v: second connection handed off %q", fin, req)
		}
	}
}

// TestNoAllocs: the per-packet path allocates nothing once warm: stateless
// SYN-ACKs, spliced frames, and a whole connection from SYN to expiry
// (handshake, request, handoff over the control connection, splice, FIN).
func TestNoAllocs(t *testing.T) {
	h := newHarness(t)
	const req = "GET /static/x HTTP/1.1\r\nHost: x\r\n\r\n"

	syn := h.client(41000)
	if n := testing.AllocsPerRun(1000, func() {
		syn.send(syn.isn, 0, header.FlagSYN, "")
		h.tx.take()
	}); n != 0 {
		t.Errorf("SYN: %v allocations per frame", n)
	}

	spliced := h.client(41001)
	spliced.splice(0, req)
	if n := testing.AllocsPerRun(1000, func() {
		spliced.data(0, "")
		h.tx.take()
	}); n != 0 {
		t.Errorf("spliced frame: %v allocations per frame", n)
	}

	c := h.client(41002)
	connection := func() {
		c.isn += 1 << 20
		c.off = 0
		c.splice(0, req)
		c.data(0, "")
		c.data(header.FlagFIN, "")
		h.tx.take()
		h.advance(h.s.cfg.Linger + wheelTick)
	}
	if n := testing.AllocsPerRun(200, connection); n != 0 {
		t.Errorf("whole connection: %v allocations", n)
	}
	if got := h.s.C.HandoffsOK.Load(); got != 202 {
		t.Errorf("HandoffsOK = %d, want 202", got) // AllocsPerRun runs once more to warm up
	}
}

// BenchmarkSplicedFrame: one client frame of a spliced flow through the
// shard (decode, checks, flow lookup, MAC rewrite, queue for TX), with
// 10,000 spliced flows in the table. The frame is built anew for each
// iteration, which the ring does not do, so this is an upper bound.
func BenchmarkSplicedFrame(b *testing.B) {
	h := newHarness(b)
	h.s.cfg.MaxFlows = 20000
	h.s.tab = newTable(h.s.cfg.MaxFlows, h.s.cfg.FSM.BufferSize(), h.s.cfg.FSM.BufferSize()+frameOverhead)
	var flows []*client
	for p := range uint16(10000) {
		c := h.client(10000 + p)
		c.splice(0, "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n")
		h.tx.take()
		flows = append(flows, c)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		flows[i%len(flows)].data(0, "")
		if i%64 == 63 {
			h.tx.take()
		}
	}
}

// BenchmarkSynAck: a SYN in, a stateless SYN-ACK (with its cookie) out.
func BenchmarkSynAck(b *testing.B) {
	h := newHarness(b)
	c := h.client(40000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.send(c.isn, 0, header.FlagSYN, "")
		if i%64 == 63 {
			h.tx.take()
		}
	}
}

// The three steps of BenchmarkSplicedFrame one by one, on a real frame.

func benchFrame(b *testing.B) []byte {
	h := newHarness(b)
	c := h.client(40000)
	c.send(c.isn, 0, header.FlagSYN, "")
	return bytes.Clone(h.tx.take()[0]) // the SYN-ACK: an Ethernet/IPv4/TCP frame
}

func BenchmarkDecode(b *testing.B) {
	f := benchFrame(b)
	b.ReportAllocs()
	for b.Loop() {
		ip, err := header.ParseIPv4(f[header.EthernetLen:])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := header.ParseTCP(ip.Payload()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	const n = 1 << 20
	tab, _ := fillSpliced(n)
	keys := make([]uint64, 0, n)
	for k := range tab.index {
		keys = append(keys, k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := tab.lookup(keys[i%n]); !ok {
			b.Fatal("flow not found")
		}
	}
}

func BenchmarkRewrite(b *testing.B) {
	f := benchFrame(b)
	mac := testBackendMAC(0)
	b.ReportAllocs()
	for b.Loop() {
		header.Ethernet(f).SetAddrs(mac[:], testSwitchMAC[:])
	}
}

// TestHandoffRetry: an agent that refuses a connection (ERR: it made no
// socket) gets it sent to another back-end of the pool; when every one
// refuses, the switch answers 503.
func TestHandoffRetry(t *testing.T) {
	const req = "GET / HTTP/1.1\r\nHost: both.example\r\n\r\n"
	t.Run("second back-end accepts", func(t *testing.T) {
		h := newHarness(t)
		c := h.client(40010)
		c.handshake()
		c.data(header.FlagPSH, req)
		id, _, _ := h.handoff(0)
		h.answer(0, id, false)
		id, _, got := h.handoff(1)
		if string(got) != req {
			t.Fatalf("retried handoff carries %q", got)
		}
		h.answer(1, id, true)
		c.data(0, "")
		if f := h.tx.take(); len(f) != 1 || parseFrame(t, f[0]).dstMAC != testBackendMAC(1) {
			t.Fatalf("after the retry: %d frames, want one to be2", len(f))
		}
		if r, ok := h.s.C.HandoffRetries.Load(), h.s.C.HandoffsOK.Load(); r != 1 || ok != 1 {
			t.Errorf("retries %d, OK %d; want 1 and 1", r, ok)
		}
		// The next connection starts with no refusals: be1 may take it.
		d := h.client(40011)
		d.handshake()
		d.data(header.FlagPSH, req)
		h.handoff(0)
	})
	t.Run("all refuse", func(t *testing.T) {
		h := newHarness(t)
		c := h.client(40012)
		c.handshake()
		c.data(header.FlagPSH, req)
		for _, b := range []int{0, 1} {
			id, _, _ := h.handoff(b)
			h.answer(b, id, false)
		}
		if body, fin := c.response(h.tx.take()); !strings.HasPrefix(string(body), "HTTP/1.1 503 ") || !fin {
			t.Errorf("answer %q (FIN %v), want a 503", body, fin)
		}
		for b, a := range h.agents {
			if h.pump(); len(a.Msgs) != 0 {
				t.Errorf("agent %d got %d more messages", b, len(a.Msgs))
			}
		}
	})
}

// TestFlowLogSampled checks that the data path's per-flow log keeps a burst
// a second, whatever the rate of events.
func TestFlowLogSampled(t *testing.T) {
	var buf bytes.Buffer
	log := sampled(zerolog.New(&buf))
	for range 10000 {
		log.Warn().Msg("handoff send")
	}
	if n := strings.Count(buf.String(), "\n"); n != flowLogBurst {
		t.Errorf("%d lines logged for 10000 events, want %d", n, flowLogBurst)
	}
}

// TestHandoffWriteFails: when writing a HANDOFF finds the agent's
// connection broken, the connection is failed and, the pool having no
// other back-end, the client is answered 503 at once, counted as a failed
// handoff; it does not wait for the handoff timeout (504).
func TestHandoffWriteFails(t *testing.T) {
	h := newHarness(t)
	h.agents[0].Sock.Close() // be1's agent dies; the switch has not read it yet
	c := h.client(46100)
	c.handshake()
	c.data(header.FlagPSH, "GET /static/x HTTP/1.1\r\nHost: x\r\n\r\n")
	body, _ := c.response(h.tx.take())
	if !strings.Contains(string(body), "HTTP/1.1 503 ") {
		t.Fatalf("request to a back-end whose connection broke: answered %q, want 503 at once", body)
	}
	if failed, errs := h.s.bc[0].HandoffsFailed.Load(), h.s.C.HandoffsErr.Load(); failed != 1 || errs != 1 {
		t.Errorf("be1 handoffs failed %d, handoff errors %d; want 1 and 1", failed, errs)
	}
	if h.s.ctl.Usable(0) {
		t.Error("be1 still usable after its connection broke")
	}
}

// TestStartingSwitchWaits: a request that comes before its pool's first
// control connection is ready (a switch just started or upgraded) waits
// for it, rather than get a 503; once the back-ends have been tried, a
// pool with none usable answers 503 at once.
func TestStartingSwitchWaits(t *testing.T) {
	h := newStartingHarness(t)
	c := h.client(41300)
	c.handshake()
	c.data(header.FlagPSH, "GET /static/x HTTP/1.1\r\nHost: x\r\n\r\n")
	if out := h.tx.take(); len(out) != 0 {
		t.Fatalf("before any control connection: %d frames sent, want none (waiting)", len(out))
	}
	h.advance(0) // the connections come up; the next tick sends the request
	h.advance(wheelTick)
	if _, _, req := h.handoff(0); len(req) == 0 {
		t.Fatal("not handed off once the agent was ready")
	}
	if n := h.s.C.HTTPErrors[503].Load(); n != 0 {
		t.Errorf("%d 503s, want none", n)
	}

	h.s.ctl.Fail(0, errors.New("test: cut"))
	d := h.client(41301)
	d.handshake()
	d.data(header.FlagPSH, "GET /static/x HTTP/1.1\r\nHost: x\r\n\r\n")
	if body, _ := d.response(h.tx.take()); !strings.HasPrefix(string(body), "HTTP/1.1 503 ") {
		t.Errorf("be1 down after it was up: answer %q, want a 503 at once", body)
	}
}

// TestHandoffWriteFailsRetried: a HANDOFF that could not be written made
// no socket: the request goes to another back-end of its pool, without
// an error.
func TestHandoffWriteFailsRetried(t *testing.T) {
	h := newHarness(t)
	h.agents[0].Sock.Close() // be1's agent dies; the switch has not read it yet
	c := h.client(46101)
	c.handshake()
	c.data(header.FlagPSH, "GET / HTTP/1.1\r\nHost: both.example\r\n\r\n")
	if _, _, req := h.handoff(1); len(req) == 0 {
		t.Fatal("not handed off to be2")
	}
	if r, e := h.s.C.HandoffRetries.Load(), h.s.C.HTTPErrors[503].Load(); r != 1 || e != 0 {
		t.Errorf("retries %d, 503s %d; want 1 (be1 picked first, its write failed) and 0", r, e)
	}
}
