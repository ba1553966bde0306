package shard

import (
	"sync"
	"sync/atomic"
)

// loadTable counts the live (spliced) flows of every back-end over all the
// shards, for the load-aware policies: a shard adds one when a handoff
// succeeds and takes it back when the flow ends. It only grows (a reload
// appends back-ends); readers load the slice of counters atomically.
type loadTable struct {
	p  atomic.Pointer[[]*atomic.Int64]
	mu sync.Mutex // grow
}

func newLoadTable(n int) *loadTable {
	t := &loadTable{}
	t.grow(n)
	return t
}

// grow makes room for n back-ends, keeping the counts there are.
func (t *loadTable) grow(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var old []*atomic.Int64
	if p := t.p.Load(); p != nil {
		old = *p
	}
	if len(old) >= n {
		return
	}
	s := append(make([]*atomic.Int64, 0, n), old...)
	for len(s) < n {
		s = append(s, new(atomic.Int64))
	}
	t.p.Store(&s)
}

func (t *loadTable) add(b int, d int64) { (*t.p.Load())[b].Add(d) }

func (t *loadTable) get(b int) int64 { return (*t.p.Load())[b].Load() }
