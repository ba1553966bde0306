package shard

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"webswitch/handoff"
	"webswitch/handoff/control"
	"webswitch/handoff/control/controltest"
	"webswitch/internal/mono"
	"webswitch/l7"
	"webswitch/neigh"
	"webswitch/ring"
	"webswitch/tcpfsm"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

// The shard tests drive one Shard without a ring: frames go in through
// Shard.frame (or, for tests of the loop, through its memLink and
// Shard.round), what it sends is caught by the memLink, and each
// back-end's agent is the other end of an in-memory pipe, run by the test
// with a real handoff.Session. Everything happens on the test's goroutine, with a
// clock the test moves.

var (
	testVIP       = [4]byte{198, 18, 0, 100}
	testClientIP  = [4]byte{198, 18, 0, 10}
	testClientMAC = [6]byte{2, 0, 0, 0, 0, 10}
	testSwitchMAC = [6]byte{2, 0, 0, 0, 0, 2}
	testSecret    = []byte("0123456789abcdef0123456789abcdef")
)

func testBackendMAC(b int) [6]byte { return [6]byte{2, 0, 0, 0, 0, byte(21 + b)} }

// testConfig: /static/ goes to pool "static" (be1), host web.example to
// pool "web" (be2), host both.example to pool "both" (be1 and be2);
// anything else matches no rule.
func testConfig(t testing.TB) *Config {
	rt, err := l7.NewRouter([]l7.Rule{
		{Match: l7.Match{PathPrefix: "/static/"}, Pool: 0},
		{Match: l7.Match{Host: "web.example"}, Pool: 1},
		{Match: l7.Match{Host: "both.example"}, Pool: 2},
		{Match: l7.Match{SNI: "tls.example"}, Pool: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &Config{
		VIP: testVIP, Ports: []uint16{80}, TLSPorts: []uint16{443}, Shards: 1,
		Backends: []Backend{testBackend("be1", 0), testBackend("be2", 1)},
		Pools:    []l7.Pool{{Name: "static", Backends: []int{0}}, {Name: "web", Backends: []int{1}}, {Name: "both", Backends: []int{0, 1}}},
		Router:   rt,
		FSM: tcpfsm.Config{
			MSS: 1460, WScale: advertisedWScale, Window: 16 << 10,
			RTOInitial: rtoInitial, RTOMax: rtoMax, MaxRetries: maxRetries,
			Linger: time.Second,
		},
		MaxFlows: 16, MaxRequestHead: 1024,
		RequestTimeout: 10 * time.Second, HandoffTimeout: 2 * time.Second,
		IdleTimeout: 300 * time.Second, Linger: time.Second,
		RecoveryRate: 1000, RecoveryTimeout: 500 * time.Millisecond,
		Control: control.Config{
			Secret: testSecret, ConnectTimeout: time.Second,
			ReconnectMin: 100 * time.Millisecond, ReconnectMax: 5 * time.Second,
			HealthInterval: time.Second, HealthTimeout: 500 * time.Millisecond, HealthRise: 2, HealthFall: 3,
			AnswerTimeout: 2 * time.Second,
		},
	}
}

// testBackend returns back-end b (0 for be1) at 198.18.0.(21+b), its agent
// on port 7070 there.
func testBackend(name string, b int) Backend {
	ip := [4]byte{198, 18, 0, byte(21 + b)}
	return Backend{Target: control.Target{Name: name, Agent: netip.AddrPortFrom(netip.AddrFrom4(ip), 7070)}, IP: ip}
}

// memLink is the shard's Link in tests. On the TX side it keeps a copy of
// each frame (without the vnet header) in memory it reuses, so that it
// does not allocate once warm and allocation tests measure the shard
// alone. On the RX side it holds the frames given to inject until the
// loop's next round receives them, as one block.
type memLink struct {
	frames [][]byte // since the last take
	store  []byte   // their bytes
	sent   int
	arena  []byte // for Buffer
	used   int
	in     [][]byte // injected frames, vnet header first
	f      ring.Frame
}

func (r *memLink) Fd() int { return -1 }

// inject queues a frame (an Ethernet frame; a zero vnet header is added)
// for the next round.
func (r *memLink) inject(eth []byte) {
	raw := append(make([]byte, ring.VnetHdrLen, ring.VnetHdrLen+len(eth)), eth...)
	r.in = append(r.in, raw)
}

func (r *memLink) Receive(sink frameSink) {
	if len(r.in) == 0 {
		return
	}
	for _, raw := range r.in {
		r.f = ring.Frame{Data: raw[ring.VnetHdrLen:], Vnet: raw[:ring.VnetHdrLen], Raw: raw, Len: uint32(len(raw) - ring.VnetHdrLen)}
		sink.frame(&r.f)
	}
	r.in = r.in[:0]
	sink.endBlock(false)
}

func (r *memLink) Add(frame []byte) {
	r.sent++
	start := len(r.store)
	r.store = append(r.store, frame[ring.VnetHdrLen:]...)
	r.frames = append(r.frames, r.store[start:len(r.store):len(r.store)])
}

func (r *memLink) Buffer(n int) []byte {
	if r.used+n > len(r.arena) {
		r.used = 0
	}
	b := r.arena[r.used : r.used+n : r.used+n]
	clear(b)
	r.used += n
	return b
}

func (r *memLink) Flush() (int, error) { r.used = 0; return 0, nil }

func (r *memLink) Stats() ring.SenderStats { return ring.SenderStats{Sent: uint64(r.sent)} }

// take returns the frames sent since the last take. They stay valid until
// the shard sends again.
func (r *memLink) take() [][]byte {
	f := r.frames
	r.frames, r.store = r.frames[:0], r.store[:0]
	return f
}

type harness struct {
	t      testing.TB
	s      *Shard
	tx     *memLink
	now    mono.Time
	agents []*controltest.Agent // by back-end: the agent end of its latest connection
	old    []*controltest.Agent // ends of earlier connections, still pumped
	frame  []byte               // scratch for client frames: vnet header + Ethernet frame
	script *[]byte              // when set, client frames are recorded as FuzzShard ops
}

// newHarness returns a shard whose control connections to both back-ends
// are up and whose back-end MACs are known.
func newHarness(t testing.TB) *harness {
	h := newStartingHarness(t)
	h.advance(0) // dials both agents
	for b := range h.s.cfg.Backends {
		if st := h.s.ctl.Conn(b).State(); st != control.StateReady {
			t.Fatalf("control connection %d: %v, want ready", b, st)
		}
	}
	return h
}

// newStartingHarness returns a shard that has not yet made its control
// connections: they start at the first advance.
func newStartingHarness(t testing.TB) *harness {
	h := &harness{t: t, tx: &memLink{arena: make([]byte, 64<<10)}, now: mono.Time(100 * time.Second), frame: make([]byte, 16<<10)}
	cfg := testConfig(t)
	nb := neigh.NewTable(len(cfg.Backends))
	cookies := tcpfsm.NewCookies([16]byte{1, 2, 3})
	h.s = newShard(0, 0, cfg, testSwitchMAC, h.tx, true, cookies, nb, newLoadTable(len(cfg.Backends)), h.dial, func() mono.Time { return h.now }, zerolog.Nop())
	for b := range cfg.Backends {
		nb.Set(b, testBackendMAC(b))
	}
	return h
}

// dial is the shard's control.Dialer: an in-memory pipe to a new agent end
// for the back-end at agent (198.18.0.(21+b)).
func (h *harness) dial(agent netip.AddrPort) (control.Socket, error) {
	b := int(agent.Addr().As4()[3]) - 21
	sw, ag := controltest.Pipe()
	a := controltest.NewAgent(ag, testSecret)
	for len(h.agents) <= b {
		h.agents = append(h.agents, nil)
	}
	if h.agents[b] != nil {
		h.old = append(h.old, h.agents[b])
	}
	h.agents[b] = a
	return sw, nil
}

// reconnect cuts back-end b's control connection if it is up, then moves
// the clock by the first reconnection delay, so that the shard connects to
// a new agent end.
func (h *harness) reconnect(b int) {
	h.t.Helper()
	if h.s.ctl.Conn(b).State() != control.StateIdle {
		h.s.ctl.Fail(b, errors.New("test: cut"))
	}
	h.advance(h.s.cfg.Control.ReconnectMin)
	if st := h.s.ctl.Conn(b).State(); st != control.StateReady {
		h.t.Fatalf("back-end %d after reconnecting: %v, want ready", b, st)
	}
}

// pump moves control bytes both ways until neither side has more.
func (h *harness) pump() {
	for moved := true; moved; {
		moved = false
		h.s.ctl.Events(nil, h.now)
		for b, a := range append(h.agents[:len(h.agents):len(h.agents)], h.old...) {
			m, err := a.Pump()
			if err != nil {
				h.t.Fatalf("agent %d: %v", b, err)
			}
			moved = moved || m
		}
	}
}

// handoff returns the one HANDOFF back-end b's agent received since the
// last call, decoded.
func (h *harness) handoff(b int) (id uint64, st handoff.ConnState, request []byte) {
	h.t.Helper()
	h.pump()
	a := h.agents[b]
	if len(a.Msgs) != 1 || a.Msgs[0].Type != handoff.MsgHandoff {
		h.t.Fatalf("agent %d received %d messages, want one HANDOFF: %+v", b, len(a.Msgs), a.Msgs)
	}
	m := a.Msgs[0]
	a.Reset()
	request, err := handoff.DecodeHandoffBody(m.Body, &st)
	if err != nil {
		h.t.Fatalf("HANDOFF body: %v", err)
	}
	return m.ID, st, request
}

// answer makes back-end b's agent answer a handoff, OK or ERR.
func (h *harness) answer(b int, id uint64, ok bool) {
	h.t.Helper()
	var err error
	if ok {
		err = h.agents[b].Sess.Send(handoff.MsgOK, id, nil)
	} else {
		err = h.agents[b].Sess.SendErr(id, 1, "test")
	}
	if err != nil {
		h.t.Fatal(err)
	}
	h.pump()
}

// advance moves the clock and runs the timers and the control
// connections' steps, as one loop round does.
func (h *harness) advance(d time.Duration) {
	h.now = h.now.Add(d)
	h.s.now = h.now
	h.s.wheel.advance(h.s.tab.flows, h.now, h.s.fire)
	h.s.ctl.Step(h.now)
	h.s.recoveryStep()
	h.pump()
}

// lookups returns the LOOKUPs back-end b's agent received since the last
// call (ends the round first, which sends them).
func (h *harness) lookups(b int) []handoff.Msg {
	h.t.Helper()
	h.advance(0)
	a := h.agents[b]
	var ls []handoff.Msg
	for _, m := range a.Msgs {
		if m.Type != handoff.MsgLookup {
			h.t.Fatalf("agent %d received %v, want LOOKUPs only", b, m.Type)
		}
		ls = append(ls, m)
	}
	a.Reset()
	return ls
}

// owners makes back-end b's agent answer LOOKUP m: owner(id) for each
// connection asked.
func (h *harness) owners(b int, m handoff.Msg, owner func(handoff.FlowID) handoff.Owner) {
	h.t.Helper()
	ids, err := handoff.DecodeLookupBody(m.Body, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	var body []byte
	for _, id := range ids {
		body = handoff.AppendOwner(body, owner(id))
	}
	if err := h.agents[b].Sess.Send(handoff.MsgOwners, m.ID, body); err != nil {
		h.t.Fatal(err)
	}
	h.pump()
}

// noOwners makes every agent answer every LOOKUP it has with no owner,
// and ends the round, which decides them.
func (h *harness) noOwners() {
	h.t.Helper()
	for b := range h.agents {
		for _, m := range h.lookups(b) {
			h.owners(b, m, func(handoff.FlowID) handoff.Owner { return handoff.Owner{} })
		}
	}
	h.advance(0)
}

// client is one scripted client connection.
type client struct {
	h           *harness
	port        uint16
	isn, iss    seqnum.Value // client's ISN, switch's ISN (from the SYN-ACK)
	off         int          // request bytes sent so far
	window      uint16
	opts        header.SynOptions
	badChecksum bool
	otherHost   bool // frames go to another host's MAC address
	vipPort     uint16
	viaLink     bool // frames go to the memLink, for the loop's next round, not straight to Shard.frame
}

func (h *harness) client(port uint16) *client {
	return &client{h: h, port: port, vipPort: 80, isn: seqnum.Value(0x10000 * uint32(port)), window: 1000,
		opts: header.SynOptions{MSS: 1460, WScale: 6, WScaleOK: true, SACKOK: true}}
}

// send builds a client frame and gives it to the shard.
func (c *client) send(seq, ack seqnum.Value, flags uint8, payload string) {
	h := c.h
	optLen := 0
	if flags&header.FlagSYN != 0 {
		optLen = header.SynAckOptionsLen
	}
	ipLen := header.IPv4MinLen + header.TCPMinLen + optLen + len(payload)
	raw := h.frame[:ring.VnetHdrLen+header.EthernetLen+ipLen]
	clear(raw[:ring.VnetHdrLen])
	eth := header.Ethernet(raw[ring.VnetHdrLen:])
	dst := testSwitchMAC
	if c.otherHost {
		dst = [6]byte{2, 0, 0, 0, 0, 0x99}
	}
	eth.Encode(dst[:], testClientMAC[:], header.EtherTypeIPv4)
	ip := header.IPv4(eth[header.EthernetLen:])
	ip.Encode(testClientIP, testVIP, header.ProtocolTCP, ipLen, 1)
	tcp := header.TCP(ip[header.IPv4MinLen:])
	tcp.Encode(&header.Fields{SrcPort: c.port, DstPort: c.vipPort, Seq: uint32(seq), Ack: uint32(ack), Flags: flags, Window: c.window}, optLen)
	if optLen > 0 {
		header.EncodeSynAckOptions(tcp[header.TCPMinLen:], c.opts.MSS, &c.opts, c.opts.WScale)
	}
	copy(tcp[header.TCPMinLen+optLen:], payload)
	tcp.SetChecksum(testClientIP, testVIP)
	if c.badChecksum {
		tcp[16] ^= 0xFF
	}
	if h.script != nil {
		*h.script = appendFrameOp(*h.script, opFrame, eth)
	}
	if c.viaLink {
		h.tx.inject(eth)
		return
	}
	h.s.frame(&ring.Frame{Data: eth, Vnet: raw[:ring.VnetHdrLen], Raw: raw, Len: uint32(len(eth))})
}

// handshake sends the SYN, checks the SYN-ACK and sends the last ACK.
func (c *client) handshake() {
	h := c.h
	h.t.Helper()
	c.send(c.isn, 0, header.FlagSYN, "")
	out := h.tx.take()
	if len(out) != 1 {
		h.t.Fatalf("SYN answered with %d frames", len(out))
	}
	f := parseFrame(h.t, out[0])
	if f.flags != header.FlagSYN|header.FlagACK || f.ack != c.isn+1 || f.dstMAC != testClientMAC || f.srcMAC != testSwitchMAC {
		h.t.Fatalf("SYN-ACK = %+v", f)
	}
	c.iss = f.seq
	c.send(c.isn+1, c.iss+1, header.FlagACK, "")
}

// splice opens the connection with request req, which back-end b's agent
// accepts.
func (c *client) splice(b int, req string) {
	c.h.t.Helper()
	c.handshake()
	c.data(header.FlagPSH, req)
	id, _, _ := c.h.handoff(b)
	c.h.answer(b, id, true)
}

// data sends request bytes after those already sent.
func (c *client) data(flags uint8, payload string) {
	c.send(c.isn.Add(1+seqnum.Size(c.off)), c.iss+1, flags|header.FlagACK, payload)
	c.off += len(payload)
	if flags&header.FlagFIN != 0 {
		c.off++
	}
}

// sentFrame is a frame the shard sent, parsed and checked.
type sentFrame struct {
	dstMAC, srcMAC [6]byte
	src, dst       [4]byte
	sport, dport   uint16
	seq, ack       seqnum.Value
	flags          uint8
	window         uint16
	payload        []byte
}

func parseFrame(t testing.TB, b []byte) sentFrame {
	t.Helper()
	ip, err := header.ParseIPv4(b[header.EthernetLen:])
	if err != nil || !ip.ChecksumValid() {
		t.Fatalf("sent frame: bad IPv4 header (%v)", err)
	}
	tcp, err := header.ParseTCP(ip.Payload())
	if err != nil || !tcp.ChecksumValid(ip.Src(), ip.Dst()) {
		t.Fatalf("sent frame: bad TCP header (%v)", err)
	}
	e := header.Ethernet(b)
	return sentFrame{
		dstMAC: [6]byte(e.Dst()), srcMAC: [6]byte(e.Src()), src: ip.Src(), dst: ip.Dst(),
		sport: tcp.SrcPort(), dport: tcp.DstPort(),
		seq: seqnum.Value(tcp.Seq()), ack: seqnum.Value(tcp.Ack()), flags: tcp.Flags(), window: tcp.Window(),
		payload: tcp.Payload(),
	}
}

// response collects the switch's own answer to c: the payload bytes and
// whether a FIN ended them.
func (c *client) response(frames [][]byte) (payload []byte, fin bool) {
	for _, b := range frames {
		f := parseFrame(c.h.t, b)
		if f.dst != testClientIP || f.dport != c.port {
			c.h.t.Fatalf("frame to %v:%d, want the client", f.dst, f.dport)
		}
		payload = append(payload, f.payload...)
		fin = fin || f.flags&header.FlagFIN != 0
	}
	return payload, fin
}
