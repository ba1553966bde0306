package l7

import (
	"cmp"
	"math"
	"sync"
)

// lardEntry maps a target, by its hash, to a back-end's slot.
type lardEntry struct {
	target uint64 // hashKey of the target, never 0; 0: a free entry
	slot   int32
	used   uint32 // Targets.clock at the last use
}

// Targets is a LARD pool's target table, shared by the pool's pickers (one
// per shard) and safe for concurrent use: a mutex is held for each keyed
// pick, once per new connection. It is a set-associative cache: a
// target's set is chosen by the low bits of its hash, and a new target
// replaces a free entry of the set, or else the least recently used one.
// Two targets with the same 64-bit hash share their entry. The zero value
// is an empty table; the first [NewPicker] of the pool allocates it with
// the pool's LARDTargets entries. A Targets belongs to one pool.
type Targets struct {
	mu      sync.Mutex
	table   []lardEntry // sets of lardWays entries
	setMask uint64
	clock   uint32 // counts keyed picks; ages are wrap-safe differences
}

// init allocates the table for pool p, if not yet done, and returns t.
func (t *Targets) init(p *Pool) *Targets {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.table == nil {
		sets := 1
		for sets*lardWays < cmp.Or(p.LARDTargets, DefaultLARDTargets) {
			sets *= 2
		}
		t.table, t.setMask = make([]lardEntry, sets*lardWays), uint64(sets-1)
	}
	return t
}

// lardPicker is PolicyLARD: the pool's shared table, and the shard's
// cursor for picks without a key.
type lardPicker struct {
	members
	low, high int64
	targets   *Targets
}

func newLARDPicker(m members, p *Pool) *lardPicker {
	low, high := p.lardThresholds()
	return &lardPicker{members: m, low: low, high: high, targets: p.Targets.init(p)}
}

func (p *lardPicker) Pick(key []byte, load func(int) int64, up func(int) bool) (int, bool) {
	if len(key) == 0 || len(p.backends) == 0 {
		return p.leastConnections(load, up)
	}
	h := max(hashKey(key), 1)
	start := int(h % uint64(len(p.backends)))
	t := p.targets
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clock++
	e, found := t.lookup(h)
	if found && up(p.backends[e.slot]) {
		s := int(e.slot)
		if l, high := load(p.backends[s]), p.high*p.weights[s]; l > high {
			u, _ := p.leastLoaded(start, load, up) // s is up
			if l >= 2*high || load(p.backends[u]) < p.low*p.weights[u] {
				s = u
			}
		}
		e.slot, e.used = int32(s), t.clock
		return p.backends[s], true
	}
	s, ok := p.leastLoaded(start, load, up)
	if !ok {
		return 0, false
	}
	*e = lardEntry{target: h, slot: int32(s), used: t.clock}
	return p.backends[s], true
}

// lookup returns the entry of target h and true, or the entry a new target
// h should take and false: a free one of its set, else the least recently
// used. t.mu must be held.
func (t *Targets) lookup(h uint64) (*lardEntry, bool) {
	set := t.table[(h&t.setMask)*lardWays:][:lardWays]
	var victim *lardEntry
	oldest := uint32(0)
	for i := range set {
		e := &set[i]
		if e.target == h {
			return e, true
		}
		age := t.clock - e.used
		if e.target == 0 {
			age = math.MaxUint32
		}
		if victim == nil || age > oldest {
			victim, oldest = e, age
		}
	}
	return victim, false
}
