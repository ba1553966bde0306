package l7

// Pool is a group of back-ends, given as indices into the switch's back-end
// list.
type Pool struct {
	Name     string
	Backends []int
}

// PickRoundRobin returns the next back-end of the pool that is up, trying
// the slots in order from the one *cursor designates, and moves *cursor to
// the slot after the one picked. The cursor belongs to the caller (one per
// shard, so no synchronisation is needed); any value is valid, the zero
// value starts at the first back-end. A back-end that is down is skipped
// and its turn goes to the next one up. ok is false when no back-end is up
// (the switch answers 503); *cursor is then unchanged. up is called at
// most once per back-end.
func (p *Pool) PickRoundRobin(cursor *uint32, up func(backend int) bool) (backend int, ok bool) {
	n := uint32(len(p.Backends))
	if n == 0 {
		return 0, false
	}
	slot := *cursor % n
	for range n {
		if b := p.Backends[slot]; up(b) {
			*cursor = (slot + 1) % n
			return b, true
		}
		slot = (slot + 1) % n
	}
	return 0, false
}
