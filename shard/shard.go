package shard

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"webswitch/handoff"
	"webswitch/handoff/control"
	"webswitch/internal/mono"
	"webswitch/internal/sys"
	"webswitch/l7"
	"webswitch/neigh"
	"webswitch/ring"
	"webswitch/tcpfsm"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

const (
	pollTick   = 10 * time.Millisecond // the loop wakes at least this often for timers
	wheelTick  = 10 * time.Millisecond
	wheelSlots = 4096
	txBatch    = 64
	// frameOverhead bounds the header bytes of the frames queued during a
	// handoff, beyond the window's payload.
	frameOverhead = 16 << 10
)

// Shard is one data-path loop. Everything in it belongs to its goroutine;
// only Counters are read from outside.
type Shard struct {
	id      int
	cpu     int
	cfg     *Config
	log     zerolog.Logger
	flowLog zerolog.Logger // for events of single flows: sampled, so that a flood cannot flood the log
	link    Link           // frames in and out
	mac     [6]byte
	cookies *tcpfsm.Cookies
	tab     *table
	wheel   *wheel
	ctl     *control.Set       // the control connections to the agents
	rec     *recovery          // the connections asked about
	bc      []*BackendCounters // by back-end: C.Backends(), owned here

	// published is the configuration the shard runs, for readers outside
	// its goroutine; pending is one given by Reload, applied at the top of
	// the next round.
	published atomic.Pointer[Config]
	pending   atomic.Pointer[Config]
	queries   chan *flowQuery         // Switch.Flows, answered between rounds
	capture   atomic.Pointer[capture] // Switch.Capture, while it runs

	nextCensus mono.Time
	nb         *neigh.Table
	pickers    []l7.Picker // per pool
	loads      *loadTable  // live flows per back-end, all shards
	load       func(backend int) int64
	keyBuf     [4]byte // a client address as a hash key
	up         func(backend int) bool
	refused    []bool      // during handOff: the back-ends that refused the connection
	draining   atomic.Bool // set by Switch.Drain: new connections are refused
	fire       func(i int32)
	out        tcpfsm.Out
	pollfds    []sys.PollFd
	clock      func() mono.Time
	now        mono.Time
	ipID       uint16
	vnetLen    int // bytes of vnet header before each frame on the ring and the TX path

	C Counters
}

func newShard(id, cpu int, cfg *Config, mac [6]byte, link Link, vnet bool, cookies *tcpfsm.Cookies, nb *neigh.Table, loads *loadTable, dial control.Dialer, clock func() mono.Time, log zerolog.Logger) *Shard {
	s := &Shard{
		id: id, cpu: cpu, cfg: cfg, log: log, flowLog: sampled(log), mac: mac, link: link,
		cookies: cookies, nb: nb, loads: loads, clock: clock,
		tab:     newTable(cfg.MaxFlows, cfg.FSM.BufferSize(), cfg.FSM.BufferSize()+frameOverhead),
		pickers: newPickers(cfg),
	}
	if vnet {
		s.vnetLen = ring.VnetHdrLen
	}
	s.now = clock()
	s.wheel = newWheel(wheelSlots, wheelTick, s.now)
	s.rec = newRecovery(s.now)
	s.ctl = control.NewSet(&cfg.Control, targets(cfg), dial, s, log.With().Int("shard", id).Logger(), s.now)
	s.C.growBackends(len(cfg.Backends))
	s.bc = s.C.Backends()
	s.published.Store(cfg)
	s.queries = make(chan *flowQuery)
	s.up = func(b int) bool {
		_, known := s.nb.Lookup(b)
		return known && s.ctl.Usable(b) && (s.refused == nil || !s.refused[b])
	}
	s.fire = s.timer
	s.load = loads.get
	return s
}

// hashKey returns the bytes of the flow's pool's hash key (see
// l7.HashKey), aliasing the request buffer or the shard's key buffer; nil
// or empty when the policy takes none or the connection has no such part.
func (s *Shard) hashKey(fl *flow, c *conn) []byte {
	k := s.cfg.Pools[c.pool].Key
	s.keyBuf = s.tuple(fl.key).ClientIP
	if c.tls {
		return k.FromHello(c.tcp.Request(), &c.hello, s.keyBuf[:])
	}
	return k.FromRequest(c.tcp.Request(), &c.req, s.keyBuf[:])
}

// newPickers makes the shard's own state of each pool's policy; what the
// shards share (LARD's target table) is the pool's.
func newPickers(cfg *Config) []l7.Picker {
	ps := make([]l7.Picker, len(cfg.Pools))
	for i := range cfg.Pools {
		ps[i] = l7.NewPicker(&cfg.Pools[i])
	}
	return ps
}

// run is the shard loop: rounds until stop is set.
func (s *Shard) run(stop *atomic.Bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := sys.PinToCPU(s.cpu); err != nil {
		s.log.Warn().Err(err).Int("shard", s.id).Msg("cpu affinity")
	}
	for !stop.Load() {
		s.round()
	}
	s.ctl.Close()
}

// round is one turn of the loop: take a new configuration or a query, wait
// (at most pollTick) for frames or control traffic, handle the frames, the
// control connections' events, the timers and the control connections'
// own steps, and send what that produced.
func (s *Shard) round() {
	if cfg := s.pending.Swap(nil); cfg != nil {
		s.apply(cfg)
	}
	select {
	case q := <-s.queries:
		s.answer(q)
	default:
	}
	s.pollfds = s.pollfds[:0]
	if fd := s.link.Fd(); fd >= 0 {
		s.pollfds = append(s.pollfds, sys.PollFd{Fd: int32(fd), Events: sys.PollIn})
	}
	ctlFds := len(s.pollfds)
	s.pollfds = s.ctl.AppendPollFds(s.pollfds)
	if len(s.pollfds) > 0 {
		if _, err := sys.Poll(s.pollfds, pollTick); err != nil {
			s.log.Error().Err(err).Int("shard", s.id).Msg("poll")
			time.Sleep(pollTick)
		}
	}
	s.now = s.clock()
	s.link.Receive(s)
	s.ctl.Events(s.pollfds[ctlFds:], s.now)
	s.wheel.advance(s.tab.flows, s.now, s.fire)
	s.ctl.Step(s.now)
	s.recoveryStep()
	for b, bc := range s.bc {
		bc.Usable.Store(s.ctl.Usable(b))
	}
	if s.now >= s.nextCensus {
		s.census()
		s.nextCensus = s.now.Add(censusPeriod)
	}
	s.link.Flush()
	s.C.publishTx(s.link.Stats())
	s.C.Round.Store(int64(s.now))
}

// endBlock is called by the link after the frames of one block, before the
// block goes back to the kernel: the frames forwarded point into it.
func (s *Shard) endBlock(corrupt bool) {
	if corrupt {
		s.C.Drops[DropTruncated].Add(1)
	}
	s.link.Flush()
}

// sampled returns log limited to flowLogBurst events a second: for the data
// path, where one event per packet or per flow could come at line rate.
// (Malformed frames are counted, never logged.)
func sampled(log zerolog.Logger) zerolog.Logger {
	return log.Sample(&zerolog.BurstSampler{Burst: flowLogBurst, Period: time.Second})
}

const flowLogBurst = 10

// censusPeriod is how often a shard counts its flows by state.
const censusPeriod = time.Second

// census counts the flows by state, and the spliced flows by back-end, into
// the gauges of the counters.
func (s *Shard) census() {
	var request, handingOff, responding int64
	active := make([]int64, len(s.bc)) // once a second: not the hot path
	for i := range s.tab.flows {
		fl := &s.tab.flows[i]
		switch {
		case fl.state == flowSpliced:
			active[fl.backend]++
		case fl.state != flowOwned:
		case fl.conn.tcp.State() == tcpfsm.RequestWait:
			request++
		case fl.conn.tcp.State() == tcpfsm.HandingOff:
			handingOff++
		default:
			responding++
		}
	}
	s.C.FlowsRequest.Store(request)
	s.C.FlowsHandingOff.Store(handingOff)
	s.C.FlowsResponding.Store(responding)
	for b, n := range active {
		s.bc[b].Active.Store(n)
	}
}

// config returns the configuration the shard runs; any goroutine may call
// it.
func (s *Shard) config() *Config { return s.published.Load() }

// frame handles one received frame.
func (s *Shard) frame(f *ring.Frame) {
	s.C.FramesIn.Add(1)
	data := f.Data
	if c := s.capture.Load(); c != nil {
		c.add(data)
	}
	if len(data) < header.EthernetLen {
		s.drop(DropTruncated)
		return
	}
	if [6]byte(header.Ethernet(data).Dst()) != s.mac {
		// For another host: a bridge floods a frame whose destination it
		// has forgotten (a switch of the cluster died) to every port.
		// Taking it would make two switches forward one flow.
		s.drop(DropOtherHost)
		return
	}
	if header.Ethernet(data).Type() != header.EtherTypeIPv4 {
		s.drop(DropNotIPv4)
		return
	}
	ip, err := header.ParseIPv4(data[header.EthernetLen:])
	if err != nil {
		s.dropErr(err)
		return
	}
	if ip.Protocol() != header.ProtocolTCP || ip.Dst() != s.cfg.VIP {
		s.drop(DropNotTCP)
		return
	}
	tcp, err := header.ParseTCP(ip.Payload())
	if err != nil {
		s.drop(DropTCPHeader)
		return
	}
	if !s.cfg.hasPort(tcp.DstPort()) {
		s.drop(DropPort)
		return
	}
	s.segment(f, ip, tcp, notAsked)
}

// segment handles a TCP segment to the VIP: to its flow, or to newFlow
// (with what the agents said about the connection, if they were asked).
func (s *Shard) segment(f *ring.Frame, ip header.IPv4, tcp header.TCP, asked answer) {
	t := s.tupleOf(ip, tcp)
	key := flowKey(&t)
	if i, ok := s.tab.lookup(key); ok {
		fl := &s.tab.flows[i]
		switch {
		case fl.state == flowSpliced && tcp.Flags()&(header.FlagSYN|header.FlagACK) == header.FlagSYN:
			// A SYN on a spliced flow's 4-tuple: the client starts a new
			// connection on that port, so the old one is over, whether
			// the switch saw it end (a FIN) or not (its back-end reset
			// it, or died). The back-end would refuse the SYN; the
			// switch answers it. (The spliced flow's own SYN was answered
			// by its cookie long before.)
			s.free(i)
		case fl.state == flowSpliced:
			s.forward(i, f, tcp.Flags())
			return
		default:
			s.owned(i, f, ip, tcp)
			return
		}
	} else if !s.valid(f, ip, tcp) {
		return
	}
	s.newFlow(&t, f, tcp, asked)
}

// tupleOf returns the connection of a frame to the VIP.
func (s *Shard) tupleOf(ip header.IPv4, tcp header.TCP) tcpfsm.Tuple {
	return tcpfsm.Tuple{ClientIP: ip.Src(), VIP: s.cfg.VIP, ClientPort: tcp.SrcPort(), VIPPort: tcp.DstPort()}
}

// owned handles a frame of a flow the switch owns.
func (s *Shard) owned(i int32, f *ring.Frame, ip header.IPv4, tcp header.TCP) {
	c := s.tab.flows[i].conn
	if c.tcp.State() == tcpfsm.HandingOff {
		s.enqueue(c, f)
		return
	}
	if !s.valid(f, ip, tcp) {
		return
	}
	seg := segment(tcp)
	if c.tcp.State() == tcpfsm.RequestWait && len(c.tcp.Request()) == 0 && seg.Flags&header.FlagACK != 0 && seg.Ack != c.tcp.Params().ISS+1 {
		// The switch has sent this client nothing, yet it acknowledges
		// data: the connection is a back-end's, and the "handshake" a
		// recovering switch took it for was the client's answer to the
		// re-created socket's window probe. Forget it and ask the agents.
		key := s.tab.flows[i].key
		s.free(i)
		s.recover(key, f)
		return
	}
	s.out.Reset()
	c.tcp.Input(s.now, &seg, &s.out)
	s.after(i)
}

// valid checks the checksums of a frame the switch consumes itself. Frames
// from a local sender carry a partial TCP checksum (vnet NEEDS_CSUM) or one
// the kernel already verified; those are trusted.
func (s *Shard) valid(f *ring.Frame, ip header.IPv4, tcp header.TCP) bool {
	if !ip.ChecksumValid() {
		s.drop(DropIPChecksum)
		return false
	}
	if f.Vnet != nil && ring.VnetHeader(f.Vnet).Flags()&(ring.VnetFlagNeedsCsum|ring.VnetFlagDataValid) != 0 {
		return true
	}
	if !tcp.ChecksumValid(ip.Src(), ip.Dst()) {
		s.drop(DropTCPChecksum)
		return false
	}
	return true
}

func segment(tcp header.TCP) tcpfsm.Segment {
	return tcpfsm.Segment{
		Seq: seqnum.Value(tcp.Seq()), Ack: seqnum.Value(tcp.Ack()),
		Flags: tcp.Flags(), Window: tcp.Window(), Payload: tcp.Payload(),
	}
}

// newFlow handles a frame of a connection the shard has no state for: a SYN
// gets a stateless SYN-ACK; a bare ACK with a valid cookie creates the
// flow; any other ACK or a RST is first asked about (recover), unless the
// agents were asked and none holds the connection. Then a segment with a
// valid cookie creates the flow, and a bare ACK without one gets a RST,
// and so does data when the agents said no twice (a dead connection: its
// client retransmits, seconds apart; the first data segment of a
// connection whose handshake's last ACK was lost comes again within an
// RTO with a valid cookie).
func (s *Shard) newFlow(t *tcpfsm.Tuple, f *ring.Frame, tcp header.TCP, asked answer) {
	flags := tcp.Flags()
	data := len(tcp.Payload()) > 0 || flags&header.FlagFIN != 0
	clientMAC := [6]byte(header.Ethernet(f.Data).Src())
	switch {
	case flags&(header.FlagSYN|header.FlagACK|header.FlagRST|header.FlagFIN) == header.FlagSYN && s.draining.Load():
		// Draining: no new connection. A RST tells the client at once
		// (and, behind several switches, makes it try again, perhaps
		// elsewhere). Handshakes already begun still complete.
		s.drop(DropDraining)
		s.reset(t, clientMAC, tcp)
	case flags&(header.FlagSYN|header.FlagACK|header.FlagRST|header.FlagFIN) == header.FlagSYN:
		var o header.SynOptions
		if err := header.ParseSynOptions(tcp.Options(), &o); err != nil {
			s.drop(DropBadOptions)
			return
		}
		var seg tcpfsm.Seg
		s.cfg.FSM.SynAck(s.now, s.cookies, t, seqnum.Value(tcp.Seq()), &o, &seg)
		s.send(t, clientMAC, &seg)
		s.C.SynAcks.Add(1)
	case flags&(header.FlagSYN|header.FlagRST|header.FlagACK) == header.FlagACK && data && asked == notAsked,
		flags&(header.FlagSYN|header.FlagRST) == header.FlagRST && asked == notAsked:
		s.recover(flowKey(t), f)
	case flags&(header.FlagSYN|header.FlagRST|header.FlagACK) == header.FlagACK:
		if s.tab.full() {
			s.makeRoom(t, tcp)
		}
		i, ok := s.tab.add(flowKey(t))
		if !ok {
			s.drop(DropTableFull)
			s.reset(t, clientMAC, tcp)
			return
		}
		c := s.tab.flows[i].conn
		seg := segment(tcp)
		s.out.Reset()
		if !c.tcp.Accept(s.now, &s.cfg.FSM, s.cookies, t, &seg, c.buf, &s.out) {
			s.tab.remove(i)
			if asked == notAsked {
				s.recover(flowKey(t), f)
				return
			}
			s.drop(DropNoFlow)
			if len(seg.Payload) == 0 || asked == noOwnerAgain {
				// A bare ACK with a bad cookie: tell the client there is no
				// connection. Data is only dropped: if it is a first segment
				// that overtook a lost one, the retransmission will succeed.
				s.reset(t, clientMAC, tcp)
			}
			return
		}
		c.clientMAC = clientMAC
		c.created = s.now
		s.tab.wait(i)
		c.tls = s.cfg.isTLSPort(t.VIPPort)
		c.req.Reset(s.cfg.MaxRequestHead)
		c.hello.Reset(min(l7.DefaultMaxHello, s.cfg.FSM.Window)) // a ClientHello is not bound by max_request_head
		clear(c.refused)
		c.parked = false
		s.C.Flows.Add(1)
		s.C.ActiveFlows.Add(1)
		if asked != notAsked && data {
			s.C.Recovered[RecoveredCookie].Add(1)
		}
		s.after(i)
	default:
		s.drop(DropNoFlow)
	}
}

// makeRoom is called when the table is full and tcp may complete a
// handshake: if its cookie is valid, the flow that has waited longest for
// its request head is reset and forgotten, and counted evicted, so that
// connections that idle before their request cannot keep clients that
// send one out. Without a valid cookie, or when no flow is waiting (every
// flow is being handed off, answered or spliced), nothing is evicted.
func (s *Shard) makeRoom(t *tcpfsm.Tuple, tcp header.TCP) {
	var o header.SynOptions
	if !s.cookies.Check(s.now, t, seqnum.Value(tcp.Seq()-1), seqnum.Value(tcp.Ack()-1), &o) {
		return
	}
	i, ok := s.tab.oldestWaiting()
	if !ok {
		return
	}
	fl := &s.tab.flows[i]
	c := fl.conn
	// In RequestWait the switch has sent no data: its next sequence number
	// is ISS+1, where the client's kernel expects a reset.
	p := c.tcp.Params()
	seg := tcpfsm.Seg{Seq: p.ISS + 1, Ack: p.RcvNxt, Flags: header.FlagRST | header.FlagACK}
	evicted := s.tuple(fl.key)
	s.send(&evicted, c.clientMAC, &seg)
	s.C.FlowsEvicted.Add(1)
	s.free(i)
}

// after acts on what the connection's TCP produced: send its segments, free
// it, or parse the new request bytes and hand off or answer.
func (s *Shard) after(i int32) {
	fl := &s.tab.flows[i]
	c := fl.conn
	st, mismatch := l7.NeedMore, false
	if c.tcp.State() == tcpfsm.RequestWait && s.out.Delivered && !s.out.Free {
		buf := c.tcp.Request()
		// Plain HTTP on a TLS port, or TLS on an HTTP port: the client
		// expects another protocol.
		if mismatch = c.tls != l7.LooksLikeTLS(buf[0]); !mismatch {
			st = c.parse(buf)
		}
	}
	if st != l7.Done {
		// A complete request head is not acknowledged here, nor a FIN
		// that came with it: the back-end's re-created socket does, so
		// that a switch that dies before the handoff leaves the client
		// retransmitting its request (recover.go).
		s.sendOut(fl)
	}
	if s.out.Free {
		s.free(i)
		return
	}
	if c.tcp.State() == tcpfsm.RequestWait {
		switch {
		case s.out.Delivered && mismatch:
			s.C.ProtocolMismatch.Add(1)
			s.respond(i, 0)
			return
		case s.out.Delivered:
			switch st {
			case l7.NeedMore:
				if s.out.PeerFIN {
					s.respond(i, 400)
					return
				}
				s.out.Reset()
				c.tcp.Ack(&s.out)
				s.sendOut(fl)
			case l7.Done:
				s.dispatch(i)
				return
			case l7.Malformed:
				s.respond(i, 400)
				return
			case l7.TooLarge:
				s.respond(i, 431)
				return
			}
		case s.out.PeerFIN:
			if len(c.tcp.Request()) == 0 {
				s.respond(i, 0) // the client closed without a request: just close
			} else {
				s.respond(i, 400)
			}
			return
		}
	}
	s.schedule(i)
}

// dispatch routes a complete request and hands the connection off.
func (s *Shard) dispatch(i int32) {
	c := s.tab.flows[i].conn
	var pool int
	var ok bool
	if c.tls {
		pool, ok = s.cfg.Router.RouteTLS(&c.hello, c.tcp.Request())
	} else {
		pool, ok = s.cfg.Router.Route(&c.req, c.tcp.Request())
	}
	if !ok {
		s.respond(i, 404)
		return
	}
	c.pool = pool
	s.handOff(i)
}

// handOff sends the connection to a back-end of its pool that is up and has
// not refused it, or answers 503 when there is none.
func (s *Shard) handOff(i int32) {
	fl := &s.tab.flows[i]
	c := fl.conn
	s.refused = c.refused
	var b int
	ok := c.pool < len(s.cfg.Pools) // a reload may have taken the pool of a retry
	if ok {
		b, ok = s.pickers[c.pool].Pick(s.hashKey(fl, c), s.load, s.up)
	}
	s.refused = nil
	if !ok && s.starting(c.pool) {
		// A switch just started (an upgrade, a restart): its control
		// connections are coming up. Wait for them, not 503: the request
		// goes again every wheel tick, until request_timeout.
		c.parked = true
		s.schedule(i)
		return
	}
	if !ok {
		s.respond(i, 503)
		return
	}
	p := c.tcp.Params()
	st := handoff.ConnState{
		SndISN: uint32(p.ISS), SndNxt: uint32(p.ISS + 1),
		RcvIRS: uint32(p.IRS), RcvNxt: uint32(p.RcvNxt),
		SndWnd: p.SndWnd, RcvWnd: p.RcvWnd,
		MSS: p.Opts.MSS, SndWScale: p.Opts.WScale, RcvWScale: p.RcvWScale,
		WScaleOK: p.Opts.WScaleOK, SACKOK: p.Opts.SACKOK,
	}
	st.Client, st.VIP = s.addrs(fl.key)
	if err := s.ctl.SendHandoff(b, handoffID(fl, i), &st, c.tcp.Request()); err != nil {
		// The HANDOFF did not leave (the agent's connection broke): no
		// socket was made there, so another back-end may take it.
		s.flowLog.Warn().Err(err).Int("shard", s.id).Msg("handoff send")
		s.retryElsewhere(i, b)
		return
	}
	s.tab.unwait(i)
	c.tcp.StartHandoff()
	c.backend = b
	c.handoffAt = s.now
	s.C.HandoffsSent.Add(1)
	s.schedule(i)
}

// handoffID is the id of flow i's HANDOFF: its slot and generation, bit 63
// clear (control's rule).
func handoffID(fl *flow, i int32) uint64 { return uint64(fl.gen&0x7FFFFFFF)<<32 | uint64(uint32(i)) }

// starting reports whether a back-end of pool is still making its first
// control connection.
func (s *Shard) starting(pool int) bool {
	if pool >= len(s.cfg.Pools) {
		return false
	}
	for _, b := range s.cfg.Pools[pool].Backends {
		if s.ctl.Starting(b) {
			return true
		}
	}
	return false
}

// Answered takes an agent's answer to a handoff (control.Owner).
func (s *Shard) Answered(backend int, id uint64, ok bool) {
	i := int32(uint32(id))
	if i < 0 || int(i) >= len(s.tab.flows) {
		return
	}
	fl := &s.tab.flows[i]
	if handoffID(fl, i) != id || fl.state != flowOwned || fl.conn.tcp.State() != tcpfsm.HandingOff || fl.conn.backend != backend {
		return // an answer for a flow that already timed out
	}
	s.C.HandoffLatency.observe(s.now.Sub(fl.conn.handoffAt))
	if !ok {
		// The agent refused and made no socket: another back-end of the
		// pool may take the connection. (After a timeout the first agent
		// may still make one, so that is never retried.)
		s.retryElsewhere(i, backend)
		return
	}
	s.C.HandoffsOK.Add(1)
	s.bc[backend].HandoffsOK.Add(1)
	s.loads.add(backend, 1)
	s.C.SplicedFlows.Add(1)
	c := fl.conn
	fl.state = flowSpliced
	fl.backend = uint16(backend)
	fl.last = s.now
	mac, _ := s.nb.Lookup(backend)
	if p := c.tcp.Params(); p.FIN {
		s.replayFIN(fl, mac, &p)
	}
	for q := c.queue; len(q) >= 2; {
		n := int(q[0])<<8 | int(q[1])
		raw := q[2 : 2+n]
		q = q[2+n:]
		if frameFlags(raw[s.vnetLen:])&(header.FlagFIN|header.FlagRST) != 0 {
			s.ending(fl)
		}
		s.forwardRaw(raw, mac)
	}
	s.link.Flush() // the queue goes back to the pool
	s.tab.release(fl)
	s.schedule(i)
}

// retryElsewhere hands flow i off again, to a back-end of its pool other
// than backend, which made no socket for it; or answers 503 when none is
// left.
func (s *Shard) retryElsewhere(i int32, backend int) {
	s.C.HandoffsErr.Add(1)
	s.bc[backend].HandoffsFailed.Add(1)
	c := s.tab.flows[i].conn
	if len(c.refused) < len(s.cfg.Backends) {
		c.refused = make([]bool, len(s.cfg.Backends)) // once per pooled conn
	}
	c.refused[backend] = true
	s.C.HandoffRetries.Add(1)
	s.handOff(i)
}

// Down counts a back-end the control connections took down
// (control.Owner).
func (s *Shard) Down(backend int) { s.bc[backend].Downs.Add(1) }

// Lost forgets the flows waiting for a back-end whose control connection
// broke, and gives up on its answers to LOOKUPs (control.Owner). The
// agent may have re-created a flow's socket (it delivers it even when it
// cannot answer) or not: the switch cannot tell, so it does what a
// restarted switch does. The client's next segment is asked about: the
// agent's socket, if there is one, gets the flow; if no agent has one, the
// client retransmits its request (the switch had not acknowledged it) and
// the connection starts again from its SYN cookie.
func (s *Shard) Lost(backend int) {
	s.lostLookups(backend)
	for i := range s.tab.flows {
		fl := &s.tab.flows[i]
		if fl.state == flowOwned && fl.conn.tcp.State() == tcpfsm.HandingOff && fl.conn.backend == backend {
			s.C.HandoffsErr.Add(1)
			s.bc[backend].HandoffsFailed.Add(1)
			s.free(int32(i))
		}
	}
}

// enqueue keeps a frame that arrived during the handoff: the back-end's
// kernel would reset it before the socket exists.
func (s *Shard) enqueue(c *conn, f *ring.Frame) {
	if len(c.queue)+2+len(f.Raw) > cap(c.queue) || len(f.Raw) > 0xFFFF {
		s.drop(DropQueueFull)
		return
	}
	c.queue = append(c.queue, byte(len(f.Raw)>>8), byte(len(f.Raw)))
	c.queue = append(c.queue, f.Raw...)
}

// forward sends a spliced flow's frame to its back-end: MAC rewrite only.
func (s *Shard) forward(i int32, f *ring.Frame, flags uint8) {
	fl := &s.tab.flows[i]
	mac, ok := s.nb.Lookup(int(fl.backend))
	if !ok {
		s.drop(DropNoNeighbor)
		return
	}
	fl.last = s.now
	s.forwardRaw(f.Raw, mac)
	if flags&(header.FlagFIN|header.FlagRST) != 0 && fl.endAt == 0 {
		s.ending(fl)
		s.schedule(i)
	}
}

// forwardRaw rewrites a frame's MAC addresses (it starts with the vnet
// header when the ring has them) and queues it for sending.
func (s *Shard) forwardRaw(raw []byte, mac [6]byte) {
	header.Ethernet(raw[s.vnetLen:]).SetAddrs(mac[:], s.mac[:])
	s.link.Add(raw)
	s.C.FramesForwarded.Add(1)
}

// respond makes the switch answer the client itself with an HTTP error
// (status 0: no response, just a clean close).
func (s *Shard) respond(i int32, status int) {
	fl := &s.tab.flows[i]
	c := fl.conn
	s.tab.unwait(i)
	c.queue = c.queue[:0]
	var body []byte
	switch {
	case status == 0:
	case c.tls:
		// The switch cannot answer in TLS: it closes, and counts what it
		// would have answered.
		s.C.TLSRefused[status].Add(1)
	default:
		body = l7.ErrorResponse(status)
		s.C.HTTPErrors[status].Add(1)
	}
	s.out.Reset()
	c.tcp.Respond(s.now, body, &s.out)
	s.sendOut(fl)
	if s.out.Free {
		s.free(i)
		return
	}
	s.schedule(i)
}

// timer handles a flow whose deadline came.
func (s *Shard) timer(i int32) {
	fl := &s.tab.flows[i]
	if fl.state == flowSpliced {
		if fl.endAt != 0 && s.now >= fl.endAt || s.now >= fl.last.Add(s.cfg.IdleTimeout) {
			s.free(i)
			return
		}
		s.schedule(i)
		return
	}
	c := fl.conn
	switch c.tcp.State() {
	case tcpfsm.RequestWait:
		if s.now >= c.created.Add(s.cfg.RequestTimeout) {
			s.respond(i, 408)
			return
		}
		if c.parked {
			c.parked = false
			s.handOff(i)
			return
		}
	case tcpfsm.HandingOff:
		if s.now >= c.handoffAt.Add(s.cfg.HandoffTimeout) {
			s.C.HandoffsTimeout.Add(1)
			s.bc[c.backend].HandoffsFailed.Add(1)
			s.respond(i, 504)
			return
		}
	case tcpfsm.Responding, tcpfsm.FinWait:
		s.out.Reset()
		c.tcp.Tick(s.now, &s.out)
		s.sendOut(fl)
		if s.out.Free {
			s.free(i)
			return
		}
	}
	s.schedule(i)
}

// schedule puts a flow in the timer wheel at its next deadline.
func (s *Shard) schedule(i int32) {
	fl := &s.tab.flows[i]
	var d mono.Time
	if fl.state == flowSpliced {
		d = fl.last.Add(s.cfg.IdleTimeout)
		if fl.endAt != 0 {
			d = min(d, fl.endAt)
		}
	} else {
		c := fl.conn
		switch c.tcp.State() {
		case tcpfsm.RequestWait:
			d = c.created.Add(s.cfg.RequestTimeout)
			if c.parked {
				d = s.now.Add(wheelTick)
			}
		case tcpfsm.HandingOff:
			d = c.handoffAt.Add(s.cfg.HandoffTimeout)
		default:
			d = c.tcp.Deadline()
		}
	}
	s.wheel.set(s.tab.flows, i, d)
}

// ending marks a spliced flow whose client sent its FIN or RST: its entry
// lingers (for the retransmissions and last ACKs) and then goes, but its
// back-end's load drops now. The load-aware policies count live
// connections: a closing one is no load, and counting it through the
// linger would send the next request for the same target elsewhere.
func (s *Shard) ending(fl *flow) {
	if fl.endAt != 0 {
		return
	}
	fl.endAt = s.now.Add(s.cfg.Linger)
	s.loads.add(int(fl.backend), -1)
}

func (s *Shard) free(i int32) {
	fl := &s.tab.flows[i]
	if fl.state == flowSpliced {
		s.C.SplicedFlows.Add(-1)
		if fl.endAt == 0 {
			s.loads.add(int(fl.backend), -1) // idle timeout: still counted
		}
	}
	s.C.ActiveFlows.Add(-1)
	s.wheel.remove(s.tab.flows, i)
	s.tab.remove(i)
}

func (s *Shard) drop(d Drop) { s.C.Drops[d].Add(1) }

func (s *Shard) dropErr(err error) {
	switch err {
	case header.ErrFragment:
		s.drop(DropFragment)
	case header.ErrTruncated:
		s.drop(DropTruncated)
	case header.ErrVersion:
		s.drop(DropNotIPv4)
	default:
		s.drop(DropIPHeader)
	}
}
