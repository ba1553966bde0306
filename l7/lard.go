package l7

import (
	"cmp"
	"math"
)

// lardEntry maps a target, by its hash, to a back-end's slot.
type lardEntry struct {
	target uint64 // hashKey of the target, never 0; 0: a free entry
	slot   int32
	used   uint32 // lardPicker.clock at the last use
}

// lardPicker is PolicyLARD. Its target table is a set-associative cache:
// a target's set is chosen by the low bits of its hash, and a new target
// replaces a free entry of the set, or else the least recently used one.
// Two targets with the same 64-bit hash share their entry.
type lardPicker struct {
	members
	low, high int64
	table     []lardEntry // sets of lardWays entries
	setMask   uint64
	clock     uint32 // counts picks; ages are wrap-safe differences
}

func newLARDPicker(m members, p *Pool) *lardPicker {
	sets := 1
	for sets*lardWays < cmp.Or(p.LARDTargets, DefaultLARDTargets) {
		sets *= 2
	}
	low, high := p.lardThresholds()
	return &lardPicker{members: m, low: low, high: high, table: make([]lardEntry, sets*lardWays), setMask: uint64(sets - 1)}
}

func (p *lardPicker) Pick(key []byte, load func(int) int64, up func(int) bool) (int, bool) {
	if len(key) == 0 || len(p.backends) == 0 {
		return p.leastConnections(load, up)
	}
	h := max(hashKey(key), 1)
	p.clock++
	e, found := p.lookup(h)
	start := int(h % uint64(len(p.backends)))
	if found && up(p.backends[e.slot]) {
		s := int(e.slot)
		if l, high := load(p.backends[s]), p.high*p.weights[s]; l > high {
			t, _ := p.leastLoaded(start, load, up) // s is up
			if l >= 2*high || load(p.backends[t]) < p.low*p.weights[t] {
				s = t
			}
		}
		e.slot, e.used = int32(s), p.clock
		return p.backends[s], true
	}
	s, ok := p.leastLoaded(start, load, up)
	if !ok {
		return 0, false
	}
	*e = lardEntry{target: h, slot: int32(s), used: p.clock}
	return p.backends[s], true
}

// lookup returns the entry of target h and true, or the entry a new target
// h should take and false: a free one of its set, else the least recently
// used.
func (p *lardPicker) lookup(h uint64) (*lardEntry, bool) {
	set := p.table[(h&p.setMask)*lardWays:][:lardWays]
	var victim *lardEntry
	oldest := uint32(0)
	for i := range set {
		e := &set[i]
		if e.target == h {
			return e, true
		}
		age := p.clock - e.used
		if e.target == 0 {
			age = math.MaxUint32
		}
		if victim == nil || age > oldest {
			victim, oldest = e, age
		}
	}
	return victim, false
}
