package shard

import (
	"slices"
	"testing"
	"time"

	"webswitch/internal/mono"
	"webswitch/tcpfsm"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

// waitingPorts returns the client ports of the waiting list, oldest first,
// after checking the list against the table: its links agree both ways, it
// holds exactly the flows in RequestWait, and they come in the order they
// were accepted.
func waitingPorts(t *testing.T, h *harness) []uint16 {
	t.Helper()
	tab := h.s.tab
	var ports []uint16
	prev, last := int32(-1), mono.Time(0)
	for i := tab.waitHead; i >= 0; i = tab.flows[i].conn.waitNext {
		fl := &tab.flows[i]
		c := fl.conn
		if fl.state != flowOwned || !c.waiting || c.waitPrev != prev || c.tcp.State() != tcpfsm.RequestWait || c.created < last {
			t.Fatalf("waiting list broken at slot %d: state %v, waiting %v, prev %d (want %d), %v, created %d after %d",
				i, fl.state, c.waiting, c.waitPrev, prev, c.tcp.State(), c.created, last)
		}
		ports = append(ports, uint16(fl.key>>16))
		prev, last = i, c.created
	}
	if tab.waitTail != prev {
		t.Fatalf("waiting list ends at %d, tail is %d", prev, tab.waitTail)
	}
	n := 0
	for _, i := range tab.index {
		if fl := &tab.flows[i]; fl.state == flowOwned && fl.conn.tcp.State() == tcpfsm.RequestWait {
			n++
		}
	}
	if n != len(ports) {
		t.Fatalf("%d flows in RequestWait, %d on the waiting list", n, len(ports))
	}
	return ports
}

// waitingClients fills the table with clients that complete the handshake
// and send part of a request head, a millisecond apart, and returns them
// oldest first.
func waitingClients(h *harness, base uint16) []*client {
	var cs []*client
	for p := range uint16(h.s.cfg.MaxFlows) {
		c := h.client(base + p)
		c.handshake()
		c.data(0, "GET /static/ HTTP/1.1\r\n"[:1+p%8])
		h.tx.take()
		h.advance(time.Millisecond)
		cs = append(cs, c)
	}
	return cs
}

// resets returns the RSTs among frames, parsed.
func resets(t *testing.T, frames [][]byte) []sentFrame {
	var rst []sentFrame
	for _, b := range frames {
		if f := parseFrame(t, b); f.flags&header.FlagRST != 0 {
			rst = append(rst, f)
		}
	}
	return rst
}

// TestFullTableEvictsOldestWaiting: when the table is full of connections
// that have not sent their request head, a new connection takes the place
// of the one that has waited longest, which is reset and counted; the new
// connection is served. Eviction is final: the evicted client's next
// segment finds no flow.
func TestFullTableEvictsOldestWaiting(t *testing.T) {
	h := newHarness(t)
	slow := waitingClients(h, 2000)
	for k, c := range []*client{h.client(40020), h.client(40021)} {
		c.handshake()
		rst := resets(t, h.tx.take())
		old := slow[k]
		want := sentFrame{sport: 80, dport: old.port, seq: old.iss + 1, ack: old.isn.Add(1 + seqnum.Size(old.off)), flags: header.FlagRST | header.FlagACK}
		if len(rst) != 1 || rst[0].dport != want.dport || rst[0].seq != want.seq || rst[0].ack != want.ack || rst[0].flags != want.flags {
			t.Fatalf("new connection %d: resets %+v, want one to the oldest waiting client %+v", k, rst, want)
		}
		if _, ok := h.s.tab.lookup(flowKey(&tcpfsm.Tuple{ClientIP: testClientIP, VIP: testVIP, ClientPort: old.port, VIPPort: 80})); ok {
			t.Errorf("evicted flow of port %d still in the table", old.port)
		}
		c.data(header.FlagPSH, "GET /static/a HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, _, req := h.handoff(0); len(req) == 0 {
			t.Fatalf("new connection %d not handed off", k)
		}
		if ports := waitingPorts(t, h); len(ports) != len(slow)-k-1 || ports[0] != slow[k+1].port {
			t.Errorf("after eviction %d: waiting %v", k+1, ports)
		}
	}
	snap := h.s.snapshot()
	if snap.FlowsEvicted != 2 || snap.Drops["table_full"] != 0 || snap.ActiveFlows != int64(h.s.cfg.MaxFlows) || snap.Resets != 2 {
		t.Errorf("counters: evicted %d, table_full %d, active %d, resets %d; want 2, 0, %d, 2",
			snap.FlowsEvicted, snap.Drops["table_full"], snap.ActiveFlows, h.s.cfg.MaxFlows, snap.Resets)
	}

	// The first evicted client, had it missed the RST, sends its next byte:
	// it has no valid cookie, so it is refused and evicts no one.
	slow[0].data(0, "E")
	h.noOwners()
	if full, e := h.s.C.Drops[DropTableFull].Load(), h.s.C.FlowsEvicted.Load(); full != 1 || e != 2 {
		t.Errorf("evicted client's data: table_full drops %d, evicted %d; want 1 and 2", full, e)
	}
}

// TestFullTableRefuses: only flows waiting for their request head are
// evicted. With none, a full table refuses the new connection with a RST
// (drops table_full); so does an ACK without a valid cookie, which evicts
// nothing.
func TestFullTableRefuses(t *testing.T) {
	const req = "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n"
	h := newHarness(t)
	n := uint16(h.s.cfg.MaxFlows)
	for p := range n - 3 {
		h.client(3000+p).splice(0, req)
	}
	handingOff := h.client(3100)
	handingOff.handshake()
	handingOff.data(header.FlagPSH, req)
	h.handoff(0) // not answered
	answered := h.client(3101)
	answered.handshake()
	answered.data(header.FlagPSH, "GET /nowhere HTTP/1.1\r\nHost: other.example\r\n\r\n") // 404, not yet acknowledged
	h.tx.take()
	waiting := h.client(3102)
	waiting.handshake()
	waiting.data(0, "GET")
	h.tx.take()
	if ports := waitingPorts(t, h); !slices.Equal(ports, []uint16{waiting.port}) {
		t.Fatalf("waiting %v, want only port %d", ports, waiting.port)
	}

	bad := h.client(40030)
	bad.send(bad.isn+1, 12345, header.FlagACK, "")
	if rst := resets(t, h.tx.take()); len(rst) != 1 || rst[0].dport != bad.port {
		t.Errorf("ACK without a cookie: resets %+v, want one to it", rst)
	}
	if e := h.s.C.FlowsEvicted.Load(); e != 0 {
		t.Errorf("an ACK without a valid cookie evicted %d flows", e)
	}

	first := h.client(40031)
	first.handshake()
	if rst := resets(t, h.tx.take()); len(rst) != 1 || rst[0].dport != waiting.port {
		t.Errorf("first new connection: resets %+v, want one to the waiting client", rst)
	}
	first.data(header.FlagPSH, req)
	h.handoff(0)
	second := h.client(40032)
	second.handshake()
	if rst := resets(t, h.tx.take()); len(rst) != 1 || rst[0].dport != second.port {
		t.Errorf("second new connection: resets %+v, want one to it (no flow is waiting)", rst)
	}
	if e, full := h.s.C.FlowsEvicted.Load(), h.s.C.Drops[DropTableFull].Load(); e != 1 || full != 2 {
		t.Errorf("evicted %d, table_full %d; want 1 and 2", e, full)
	}
	if ports := waitingPorts(t, h); len(ports) != 0 {
		t.Errorf("waiting %v, want none", ports)
	}
}

// TestWaitingList: a flow leaves the waiting list when its head is complete
// (handoff), when the switch answers it, when the client resets it and
// when it times out; the list keeps the order of arrival.
func TestWaitingList(t *testing.T) {
	h := newHarness(t)
	var cs []*client
	for p := range uint16(5) {
		c := h.client(4000 + p)
		c.handshake()
		h.advance(time.Millisecond)
		cs = append(cs, c)
	}
	steps := []struct {
		name string
		do   func()
		want []uint16
	}{
		{"complete head", func() {
			cs[1].data(header.FlagPSH, "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n")
			h.handoff(0)
		}, []uint16{4000, 4002, 4003, 4004}},
		{"client reset", func() { cs[2].send(cs[2].isn+1, cs[2].iss+1, header.FlagRST, "") }, []uint16{4000, 4003, 4004}},
		{"malformed head", func() { cs[4].data(header.FlagPSH, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n") }, []uint16{4000, 4003}},
		{"new connection", func() { h.client(4005).handshake() }, []uint16{4000, 4003, 4005}},
		{"request timeout", func() { h.advance(h.s.cfg.RequestTimeout - time.Millisecond) }, []uint16{4005}},
	}
	for _, st := range steps {
		st.do()
		h.tx.take()
		if got := waitingPorts(t, h); !slices.Equal(got, st.want) {
			t.Errorf("%s: waiting %v, want %v", st.name, got, st.want)
		}
	}
}

// TestEvictNoAllocs: a new connection that evicts a waiting one from a full
// table allocates nothing once warm.
func TestEvictNoAllocs(t *testing.T) {
	h := newHarness(t)
	// One more port than the table holds: each run's port is the one the
	// run before evicted.
	var cs []*client
	for p := range uint16(h.s.cfg.MaxFlows + 1) {
		cs = append(cs, h.client(5000+p))
	}
	k := 0
	connect := func() {
		cs[k%len(cs)].handshake()
		h.tx.take()
		k++
	}
	for range h.s.cfg.MaxFlows {
		connect()
	}
	if n := testing.AllocsPerRun(1000, connect); n != 0 {
		t.Errorf("eviction: %v allocations per new connection", n)
	}
	if e := h.s.C.FlowsEvicted.Load(); e != 1001 {
		t.Errorf("FlowsEvicted = %d, want 1001", e)
	}
}
