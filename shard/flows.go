package shard

import (
	"time"

	"webswitch/internal/mono"
	"webswitch/l7"
	"webswitch/tcpfsm"
)

// flowState is where a flow is in its life.
type flowState uint8

const (
	flowInvalid flowState = iota
	flowOwned             // the switch owns the connection (tcpfsm): request, handoff, own response
	flowSpliced           // a back-end owns it; the switch forwards the client's frames
)

// flow is one entry of the shard's flow table. A spliced flow needs only
// this; a flow the switch owns also has a conn.
type flow struct {
	key      uint64
	deadline mono.Time // when the timer wheel visits it (0: not in the wheel)
	last     mono.Time // spliced: time of the last frame (idle timeout)
	endAt    mono.Time // spliced: the client's FIN or RST was seen; expire then
	conn     *conn     // nil when spliced
	gen      uint32
	next     int32 // timer wheel links
	prev     int32
	slot     int32
	backend  uint16
	state    flowState
}

// conn is the state of a flow the switch owns: its TCP, its request and,
// during the handoff, the client frames that wait for the agent's answer.
type conn struct {
	tcp       tcpfsm.Conn
	tls       bool           // on a TLS port: hello, not req, is parsed
	req       l7.Request     // HTTP
	hello     l7.ClientHello // TLS
	clientMAC [6]byte
	buf       []byte // request buffer, tcpfsm.Config.BufferSize()
	queue     []byte // frames during the handoff: u16 length + frame (vnet header included)
	created   mono.Time
	handoffAt mono.Time
	backend   int
	pool      int
	refused   []bool // by back-end: agents that answered ERR to this connection
	parked    bool   // a complete request waiting for its pool's first control connections (Shard.starting)
	// The waiting list's links (flow slots, -1 at its ends) while waiting.
	waitPrev, waitNext int32
	waiting            bool // on the table's waiting list: in RequestWait
}

// parse parses the bytes received so far: an HTTP request head or a TLS
// ClientHello.
func (c *conn) parse(buf []byte) l7.Status {
	if c.tls {
		return c.hello.Parse(buf)
	}
	return c.req.Parse(buf)
}

func flowKey(t *tcpfsm.Tuple) uint64 {
	return uint64(t.ClientIP[0])<<56 | uint64(t.ClientIP[1])<<48 | uint64(t.ClientIP[2])<<40 |
		uint64(t.ClientIP[3])<<32 | uint64(t.ClientPort)<<16 | uint64(t.VIPPort)
}

// table is the shard's flow table: a map from key to slot and a slab of
// flows with a free list; conns are pooled. No allocation once warm.
//
// The flows still waiting for their request head are also on the waiting
// list, oldest first, so that a full table can find the one that has waited
// longest in constant time (Shard.makeRoom).
type table struct {
	index              map[uint64]int32
	flows              []flow
	free               []int32
	conns              []*conn
	bufSize, queueSize int
	max                int
	waitHead, waitTail int32 // oldest and newest waiting flow; -1: none
}

func newTable(max, bufSize, queueSize int) *table {
	return &table{
		index:     make(map[uint64]int32, min(max, 1<<16)),
		flows:     make([]flow, 0, min(max, 1<<16)),
		max:       max,
		bufSize:   bufSize,
		queueSize: queueSize,
		waitHead:  -1,
		waitTail:  -1,
	}
}

// full reports whether add would refuse a new flow.
func (t *table) full() bool { return len(t.index) >= t.max }

func (t *table) lookup(key uint64) (int32, bool) {
	i, ok := t.index[key]
	return i, ok
}

// slot returns a free slot of a slab with a free list: the last freed,
// or a new one at the end.
func slot[T any](slab *[]T, free *[]int32) int32 {
	if n := len(*free); n > 0 {
		i := (*free)[n-1]
		*free = (*free)[:n-1]
		return i
	}
	var zero T
	*slab = append(*slab, zero)
	return int32(len(*slab) - 1)
}

// add creates a flow owned by the switch; ok=false when the table is full.
func (t *table) add(key uint64) (int32, bool) {
	if t.full() {
		return -1, false
	}
	i := slot(&t.flows, &t.free)
	f := &t.flows[i]
	gen := f.gen + 1
	*f = flow{key: key, gen: gen, state: flowOwned, next: -1, prev: -1, conn: t.getConn()}
	t.index[key] = i
	return i, true
}

func (t *table) getConn() *conn {
	if n := len(t.conns); n > 0 {
		c := t.conns[n-1]
		t.conns = t.conns[:n-1]
		return c
	}
	return &conn{buf: make([]byte, 0, t.bufSize), queue: make([]byte, 0, t.queueSize)}
}

// release returns a flow's conn to the pool (the flow goes on, spliced).
func (t *table) release(f *flow) {
	if f.conn != nil {
		c := f.conn
		c.queue = c.queue[:0]
		t.conns = append(t.conns, c)
		f.conn = nil
	}
}

// remove deletes a flow (it must already be out of the timer wheel).
func (t *table) remove(i int32) {
	f := &t.flows[i]
	t.unwait(i)
	t.release(f)
	delete(t.index, f.key)
	f.state = flowInvalid
	t.free = append(t.free, i)
}

// wait puts owned flow i, which has just entered RequestWait, at the end
// of the waiting list.
func (t *table) wait(i int32) {
	c := t.flows[i].conn
	c.waiting = true
	c.waitPrev, c.waitNext = t.waitTail, -1
	if t.waitTail >= 0 {
		t.flows[t.waitTail].conn.waitNext = i
	} else {
		t.waitHead = i
	}
	t.waitTail = i
}

// unwait takes flow i off the waiting list, if it is on it: it leaves
// RequestWait or the table.
func (t *table) unwait(i int32) {
	c := t.flows[i].conn
	if c == nil || !c.waiting {
		return
	}
	if c.waitPrev >= 0 {
		t.flows[c.waitPrev].conn.waitNext = c.waitNext
	} else {
		t.waitHead = c.waitNext
	}
	if c.waitNext >= 0 {
		t.flows[c.waitNext].conn.waitPrev = c.waitPrev
	} else {
		t.waitTail = c.waitPrev
	}
	c.waiting = false
	c.waitPrev, c.waitNext = -1, -1
}

// oldestWaiting returns the flow that has waited longest for its request
// head; ok=false when no flow is waiting.
func (t *table) oldestWaiting() (int32, bool) {
	return t.waitHead, t.waitHead >= 0
}

// wheel is a hashed timing wheel over flow slots: each flow is in at most
// one slot list; a slot is visited every len(slots)*tick and its flows whose
// deadline has come are fired, the others stay.
type wheel struct {
	slots []int32
	tick  time.Duration
	done  int64 // ticks processed up to (exclusive)
}

func newWheel(slots int, tick time.Duration, now mono.Time) *wheel {
	w := &wheel{slots: make([]int32, slots), tick: tick}
	w.done = w.ticks(now)
	for i := range w.slots {
		w.slots[i] = -1
	}
	return w
}

func (w *wheel) slotOf(deadline mono.Time) int {
	t := max(w.ticks(deadline), w.done)
	return int(t % int64(len(w.slots)))
}

func (w *wheel) add(fl []flow, i int32, deadline mono.Time) {
	f := &fl[i]
	f.deadline = deadline
	s := w.slotOf(deadline)
	f.slot = int32(s)
	f.prev, f.next = -1, w.slots[s]
	if f.next >= 0 {
		fl[f.next].prev = i
	}
	w.slots[s] = i
}

func (w *wheel) remove(fl []flow, i int32) {
	f := &fl[i]
	if f.deadline == 0 {
		return
	}
	if f.prev >= 0 {
		fl[f.prev].next = f.next
	} else {
		w.slots[f.slot] = f.next
	}
	if f.next >= 0 {
		fl[f.next].prev = f.prev
	}
	f.deadline, f.next, f.prev = 0, -1, -1
}

// ticks returns the number of whole ticks in t.
func (w *wheel) ticks(t mono.Time) int64 { return int64(t) / int64(w.tick) }

// set moves flow i to deadline (0: stop its timer).
func (w *wheel) set(fl []flow, i int32, deadline mono.Time) {
	if fl[i].deadline == deadline {
		return
	}
	w.remove(fl, i)
	if deadline != 0 {
		w.add(fl, i, deadline)
	}
}

// advance visits the slots up to now and calls fire for each flow whose
// deadline has come, after taking it out of the wheel.
func (w *wheel) advance(fl []flow, now mono.Time, fire func(i int32)) {
	end := w.ticks(now)
	if end-w.done > int64(len(w.slots)) {
		w.done = end - int64(len(w.slots))
	}
	for ; w.done <= end; w.done++ {
		s := int(w.done % int64(len(w.slots)))
		for i := w.slots[s]; i >= 0; {
			next := fl[i].next
			if fl[i].deadline <= now {
				w.remove(fl, i)
				fire(i)
			}
			i = next
		}
	}
	w.done = end // the current tick may still get deadlines
}
