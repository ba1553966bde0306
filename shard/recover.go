package shard

import (
	"time"

	"webswitch/handoff"
	"webswitch/internal/mono"
	"webswitch/ring"
	"webswitch/tcpfsm/header"
)

// Flow recovery. The truth about a spliced connection is its socket in the
// back-end's kernel; a shard's flow table is a cache of it. A segment of a
// connection the shard has no entry for (the switch restarted, or a router
// moved the flow here from another switch) that is not the last ACK of a
// handshake is held, and the shard asks every agent with a ready control
// connection whether its host holds the connection (LOOKUP, batched up to
// handoff.MaxLookup connections per message, sent at the end of the
// round). When every agent asked has answered, or recovery_timeout has
// passed:
//
//   - an owner: the flow is spliced to it and the held segment forwarded.
//     Two owners (a stale socket, say) are told apart by handoff.Owner.Rank
//     and counted as a conflict;
//   - no owner, every agent answered: the segment is handled as the switch
//     would without recovery (a request segment whose cookie is valid starts
//     the connection again: the switch never acknowledges a complete
//     request head itself, so a request it had not handed off when it died
//     is retransmitted by the client; a bare ACK gets a RST), and the
//     connection is remembered as unowned for negativeTTL;
//   - no owner, an agent silent: the segment is dropped (that agent may own
//     it); the next segment asks again.
//
// The work is bounded: at most recovery_rate connections a second are
// asked about (a token bucket per shard), at most maxRecovering at once,
// one held frame each.
const (
	maxRecovering = 1024            // connections a shard asks about at once
	heldFrameMax  = 2048            // larger frames (GSO) are not held: their sender retransmits
	negativeTTL   = time.Second     // an unowned connection is not asked about again for this long
	negativeMax   = 1 << 15         // unowned connections remembered per generation (two generations)
	negativeKeep  = 8 * time.Second // a generation lasts this long at most (the memory of noOwnerAgain)
)

// answer is what the agents said about a connection when its segment is
// handled.
type answer uint8

const (
	notAsked     answer = iota // not asked (yet)
	noOwner                    // every agent said no
	noOwnerAgain               // every agent said no, and did before (seen): a dead connection
)

// Ways a flow is recovered.
const (
	RecoveredLookup = iota // an agent owns it: spliced
	RecoveredCookie        // no agent owns it, and its request came again with a valid cookie
	numRecovered
)

var recoveredNames = [numRecovered]string{"lookup", "cookie"}

// RecoveredName returns the metric label of a way of recovery.
func RecoveredName(how int) string { return recoveredNames[how] }

// recovering is a connection the shard asks the agents about.
type recovering struct {
	key    uint64
	since  mono.Time     // its first segment
	best   handoff.Owner // the highest-ranked claim so far
	owner  int           // the back-end that made it
	owners int           // agents that claim the connection
	held   []byte        // its last segment, vnet header included (empty: none)
}

// lookupBatch is one LOOKUP, sent to every ready agent.
type lookupBatch struct {
	id         uint64
	sent       mono.Time
	keys       []uint64 // the connections asked, in order
	asked      []bool   // by back-end: asked, answer not in yet
	waiting    int      // answers not in yet
	incomplete bool     // an agent asked did not answer (ERR, malformed, lost, timed out)
}

// recovery is a shard's flow recovery state.
type recovery struct {
	index   map[uint64]int32 // key → slot in ents
	ents    []recovering
	free    []int32
	open    *lookupBatch   // being filled this round
	flight  []*lookupBatch // sent, oldest first
	spare   []*lookupBatch
	nextID  uint64
	tokens  float64
	refill  mono.Time
	neg     [2]map[uint64]mono.Time // unowned until; [0] is the current generation
	negSwap mono.Time
	ids     []handoff.FlowID // scratch for LOOKUP bodies
	body    []byte
	started mono.Time // the shard's start
	any     bool      // a flow was recovered since
}

func newRecovery(now mono.Time) *recovery {
	return &recovery{
		started: now,
		index:   make(map[uint64]int32),
		neg:     [2]map[uint64]mono.Time{make(map[uint64]mono.Time), make(map[uint64]mono.Time)},
		ids:     make([]handoff.FlowID, 0, handoff.MaxLookup),
	}
}

// unowned reports whether key was found unowned less than negativeTTL ago.
func (r *recovery) unowned(key uint64, now mono.Time) bool {
	for _, m := range r.neg {
		if until, ok := m[key]; ok && now < until {
			return true
		}
	}
	return false
}

// remember notes key as unowned, and reports whether it was found
// unowned before (within one or two generations). The newer generation
// takes new keys; when it is full or older than negativeKeep it becomes
// the older one and the older one is dropped, so memory stays bounded
// under a flood of distinct keys.
func (r *recovery) remember(key uint64, now mono.Time) (again bool) {
	_, again = r.neg[0][key]
	if _, old := r.neg[1][key]; old {
		again = true
	}
	if len(r.neg[0]) >= negativeMax || now >= r.negSwap {
		old := r.neg[1]
		clear(old)
		r.neg[1], r.neg[0] = r.neg[0], old
		r.negSwap = now.Add(negativeKeep)
	}
	r.neg[0][key] = now.Add(negativeTTL)
	return again
}

// take takes a token from the bucket (perSecond per shard, a burst of a
// tenth of a second, at least one LOOKUP's worth; full at first).
func (r *recovery) take(now mono.Time, perSecond float64) bool {
	burst := max(perSecond/10, handoff.MaxLookup)
	if r.refill == 0 {
		r.tokens = burst
	}
	r.tokens = min(burst, r.tokens+perSecond*now.Sub(r.refill).Seconds())
	r.refill = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

// hold keeps frame as entry j's last segment, if it fits.
func (r *recovery) hold(j int32, frame []byte) {
	e := &r.ents[j]
	if len(frame) > heldFrameMax {
		e.held = e.held[:0]
		return
	}
	if e.held == nil {
		e.held = make([]byte, 0, heldFrameMax) // once per slot
	}
	e.held = append(e.held[:0], frame...)
}

func (r *recovery) add(key uint64, now mono.Time) int32 {
	j := slot(&r.ents, &r.free)
	e := &r.ents[j]
	*e = recovering{key: key, since: now, held: e.held[:0]}
	r.index[key] = j
	return j
}

func (r *recovery) remove(j int32) {
	delete(r.index, r.ents[j].key)
	r.free = append(r.free, j)
}

func (r *recovery) batch(backends int) *lookupBatch {
	var b *lookupBatch
	if n := len(r.spare); n > 0 {
		b = r.spare[n-1]
		r.spare = r.spare[:n-1]
	} else {
		b = &lookupBatch{keys: make([]uint64, 0, handoff.MaxLookup)}
	}
	if len(b.asked) < backends {
		b.asked = make([]bool, backends)
	}
	b.keys, b.waiting, b.incomplete = b.keys[:0], 0, false
	clear(b.asked)
	return b
}

// recover handles a segment of a connection the shard has no entry for
// and that is not the end of a handshake: it is held and the connection
// asked about, within the bounds.
func (s *Shard) recover(key uint64, f *ring.Frame) {
	r := s.rec
	if j, ok := r.index[key]; ok {
		r.hold(j, f.Raw)
		return
	}
	switch {
	case r.unowned(key, s.now):
		s.drop(DropNoOwner)
	case !s.anyReady() && !s.anyStarting():
		s.drop(DropNoAgent)
	case len(r.index) >= maxRecovering:
		s.drop(DropRecoveryFull)
	case !r.take(s.now, float64(s.cfg.RecoveryRate)/float64(s.cfg.Shards)):
		s.drop(DropRecoveryRate)
	default:
		r.hold(r.add(key, s.now), f.Raw)
		s.C.RecoveryAsked.Add(1)
		if r.open == nil {
			r.open = r.batch(len(s.cfg.Backends))
		}
		r.open.keys = append(r.open.keys, key)
		if len(r.open.keys) == handoff.MaxLookup {
			s.sendLookup()
		}
	}
}

// anyReady reports whether some agent can be asked.
func (s *Shard) anyReady() bool {
	for b := range s.cfg.Backends {
		if !s.cfg.Backends[b].Removed && s.ctl.Ready(b) {
			return true
		}
	}
	return false
}

// anyStarting reports whether some agent's first control connection is
// still being made (a switch that has just started): its answer is
// unknown, not "no".
func (s *Shard) anyStarting() bool {
	for b := range s.cfg.Backends {
		if s.ctl.Starting(b) {
			return true
		}
	}
	return false
}

// sendLookup sends the open batch to every ready agent.
func (s *Shard) sendLookup() {
	r := s.rec
	b := r.open
	r.open = nil
	r.ids = r.ids[:0]
	for _, key := range b.keys {
		c, v := s.addrs(key)
		r.ids = append(r.ids, handoff.FlowID{Client: c, VIP: v})
	}
	r.body, _ = handoff.AppendLookupBody(r.body[:0], r.ids) // IPv4, 1..MaxLookup: cannot fail
	r.nextID++
	b.id, b.sent = r.nextID, s.now
	for be := range s.cfg.Backends {
		if s.ctl.Starting(be) {
			b.incomplete = true // it may hold the connection: no RST, no cookie
		}
		if s.cfg.Backends[be].Removed || !s.ctl.Ready(be) {
			continue
		}
		if err := s.ctl.SendLookup(be, b.id, r.body); err != nil {
			s.flowLog.Warn().Err(err).Int("shard", s.id).Msg("lookup send")
			continue
		}
		b.asked[be] = true
		b.waiting++
		s.C.RecoveryQueries.Add(1)
	}
	if b.waiting == 0 {
		b.incomplete = true
	}
	r.flight = append(r.flight, b)
}

// Owners takes an agent's answer to a LOOKUP (control.Owner). The
// connections are decided at the end of the round (recoveryStep).
func (s *Shard) Owners(backend int, id uint64, body []byte, ok bool) {
	r := s.rec
	for _, b := range r.flight {
		if b.id != id {
			continue
		}
		if backend >= len(b.asked) || !b.asked[backend] {
			return
		}
		b.asked[backend] = false
		b.waiting--
		if !ok || handoff.CheckOwners(body, len(b.keys)) != nil {
			b.incomplete = true
			s.C.RecoveryUnanswered.Add(1)
			return
		}
		for i, key := range b.keys {
			o := handoff.OwnerAt(body, i)
			if !o.Live() {
				continue // no socket, or one that needs nothing more (maybe an older connection's)
			}
			e := &r.ents[r.index[key]]
			e.owners++
			if o.Rank() > e.best.Rank() {
				e.best, e.owner = o, backend
			}
		}
		return
	}
}

// lostLookups counts the LOOKUPs that back-end b's broken connection will
// never answer as unanswered.
func (s *Shard) lostLookups(backend int) {
	for _, b := range s.rec.flight {
		if backend < len(b.asked) && b.asked[backend] {
			b.asked[backend] = false
			b.waiting--
			b.incomplete = true
			s.C.RecoveryUnanswered.Add(1)
		}
	}
}

// recoveryStep runs at the end of each round: it decides the batches whose
// answers are all in or whose time is up, and sends the open one.
func (s *Shard) recoveryStep() {
	r := s.rec
	live, done := r.flight[:0], len(r.spare)
	for _, b := range r.flight {
		if b.waiting > 0 && s.now < b.sent.Add(s.cfg.RecoveryTimeout) {
			live = append(live, b)
			continue
		}
		if b.waiting > 0 {
			b.incomplete = true
			s.C.RecoveryUnanswered.Add(uint64(b.waiting))
		}
		for _, key := range b.keys {
			s.decide(&r.ents[r.index[key]], !b.incomplete)
		}
		r.spare = append(r.spare, b)
	}
	clear(r.flight[len(live):])
	r.flight = live
	if len(r.spare) > done {
		// The held segments forwarded are queued by reference: send
		// them before their slots are free for reuse.
		s.link.Flush()
		for _, b := range r.spare[done:] {
			for _, key := range b.keys {
				r.remove(r.index[key])
			}
		}
	}
	// Right after a start, the LOOKUP waits for the agents' first
	// connections (up to recovery_timeout), so that their answers are
	// all in at once.
	if r.open != nil && (!s.anyStarting() || s.now >= r.ents[r.index[r.open.keys[0]]].since.Add(s.cfg.RecoveryTimeout)) {
		s.sendLookup()
	}
	s.C.Recovering.Store(int64(len(r.index)))
}

// decide acts on the answers about one connection.
func (s *Shard) decide(e *recovering, complete bool) {
	s.C.RecoveryLatency.observe(s.now.Sub(e.since))
	if _, ok := s.tab.lookup(e.key); ok {
		// The connection got a flow meanwhile (a handshake completed,
		// or the segment that completes it came after one that
		// overtook it): its held segment goes there.
		s.replay(e.held, notAsked)
		return
	}
	switch {
	case e.owners > 0:
		if e.owners > 1 {
			s.C.RecoveryConflicts.Add(1)
		}
		s.adopt(e)
	case complete:
		a := noOwner
		if s.rec.remember(e.key, s.now) {
			a = noOwnerAgain
		}
		s.replay(e.held, a)
	default:
		s.drop(DropNoOwner)
	}
}

// adopt makes a recovered connection a spliced flow of its owner and
// forwards its held segment.
func (s *Shard) adopt(e *recovering) {
	if s.tab.full() {
		s.drop(DropTableFull)
		return
	}
	i, _ := s.tab.add(e.key)
	fl := &s.tab.flows[i]
	s.tab.release(fl) // a spliced flow has no conn
	fl.state, fl.backend, fl.last = flowSpliced, uint16(e.owner), s.now
	s.C.ActiveFlows.Add(1)
	s.C.SplicedFlows.Add(1)
	s.C.Recovered[RecoveredLookup].Add(1)
	if !s.rec.any {
		// Once per process and shard: after a restart, when the flows
		// came back.
		s.rec.any = true
		s.log.Info().Int("shard", s.id).Dur("since_start", s.now.Sub(s.rec.started)).Msg("first flow recovered from the agents")
	}
	s.loads.add(e.owner, 1)
	if e.best.State == handoff.SockCloseWait {
		s.ending(fl) // the client's FIN came before
	}
	if len(e.held) > 0 {
		if mac, ok := s.nb.Lookup(e.owner); ok {
			s.forwardRaw(e.held, mac)
			if frameFlags(e.held[s.vnetLen:])&(header.FlagFIN|header.FlagRST) != 0 {
				s.ending(fl)
			}
		} else {
			s.drop(DropNoNeighbor)
		}
	}
	s.schedule(i)
}

// replay handles a held segment (none if raw is empty) as if it came now,
// with what the agents said.
func (s *Shard) replay(raw []byte, asked answer) {
	if len(raw) == 0 {
		return
	}
	f := ring.Frame{Raw: raw, Data: raw[s.vnetLen:]}
	if s.vnetLen > 0 {
		f.Vnet = raw[:s.vnetLen]
	}
	ip, err := header.ParseIPv4(f.Data[header.EthernetLen:])
	if err != nil {
		return // it parsed when it came
	}
	tcp, err := header.ParseTCP(ip.Payload())
	if err != nil {
		return
	}
	s.segment(&f, ip, tcp, asked)
}
