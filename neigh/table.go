package neigh

import (
	"sync"
	"sync/atomic"
)

// Table maps back-end indices to MAC addresses. Writers (the resolver, a
// reload, tests) copy the table and swap the copy in atomically; readers
// load the current snapshot without a lock. Any goroutine may call any
// method.
type Table struct {
	p  atomic.Pointer[[]entry]
	mu sync.Mutex // serialises writers
}

type entry struct {
	mac [6]byte
	ok  bool
}

// NewTable returns a table of n back-ends, none resolved.
func NewTable(n int) *Table {
	t := &Table{}
	s := make([]entry, n)
	t.p.Store(&s)
	return t
}

// Lookup returns back-end b's MAC address, and false while it is unknown
// or b is beyond the table. It does not allocate.
func (t *Table) Lookup(b int) ([6]byte, bool) {
	s := *t.p.Load()
	if b < 0 || b >= len(s) {
		return [6]byte{}, false
	}
	return s[b].mac, s[b].ok
}

// Grow makes room for n back-ends (a reload appended some), keeping the
// addresses known. It never shrinks the table: back-ends keep their index
// for the life of the process.
func (t *Table) Grow(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.growLocked(n)
}

func (t *Table) growLocked(n int) []entry {
	old := *t.p.Load()
	if len(old) >= n {
		return old
	}
	s := append(make([]entry, 0, n), old...)[:n]
	t.p.Store(&s)
	return s
}

// Set records back-end b's MAC address, growing the table to hold b if
// needed. It reports whether the table changed (b was unknown or had
// another address).
func (t *Table) Set(b int, mac [6]byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.growLocked(b + 1)
	if old[b].ok && old[b].mac == mac {
		return false
	}
	s := append([]entry(nil), old...)
	s[b] = entry{mac: mac, ok: true}
	t.p.Store(&s)
	return true
}

// Resolved reports whether every back-end's MAC address is known.
func (t *Table) Resolved() bool {
	for _, e := range *t.p.Load() {
		if !e.ok {
			return false
		}
	}
	return true
}
