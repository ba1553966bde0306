package l7

// Pool is a group of back-ends, given as indices into the switch's back-end
// list, with the policy that picks among them. The zero values of the
// policy fields are the defaults: round-robin, weight 1, and the defaults
// of the constants below. [Pool.Validate] checks a pool; [NewPicker] makes
// the per-shard state its policy needs.
//
// A Pool is a value but for Targets: a copy of a LARD pool shares its
// target table, as the shards of one switch configuration must.
type Pool struct {
	Name     string
	Backends []int
	// Weights, when not nil, has one weight per entry of Backends, from 1
	// to MaxWeight; nil gives every back-end weight 1. The weighted
	// policies give a back-end a share proportional to its weight;
	// round-robin ignores weights.
	Weights []int
	Policy  Policy
	// Key is what the policy is given as its key, [ParseHashKey]'s
	// result: the caller extracts it from each connection
	// ([HashKey.FromRequest], [HashKey.FromHello]). KeyNone: no key.
	Key HashKey
	// LoadFactor is c of bounded-load hashing: a back-end takes a key only
	// while its load is below c times its fair share of the load; at least
	// 1, 0 means DefaultLoadFactor.
	LoadFactor float64
	// LARDLow and LARDHigh are LARD's thresholds T_low and T_high, in live
	// connections per unit of weight; 0 < LARDLow < LARDHigh, 0 means
	// DefaultLARDLow and DefaultLARDHigh.
	LARDLow, LARDHigh int64
	// LARDTargets is the size of LARD's target table, rounded up to a
	// power of two of at least lardWays; 0 means DefaultLARDTargets.
	LARDTargets int
	// Replicas is the number of points per unit of weight that each
	// back-end has on the hash ring (hashing and affinity policies); 0
	// means DefaultReplicas.
	Replicas int
	// Targets is LARD's target table, new(Targets) for each LARD pool:
	// the pickers made from the pool share it, so that a target has one
	// back-end whichever shard takes the connection. Other policies
	// ignore it.
	Targets *Targets
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
