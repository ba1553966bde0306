package l7

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Policy is how a pool picks the back-end of a new connection. The zero
// value is PolicyRoundRobin, the default. docs/policies.md describes each
// policy with its parameters and measures how many keys move when
// back-ends leave and join.
type Policy uint8

// The policies. "Up" is the caller's up(b); "load" its load(b), the live
// connections of back-end b; a back-end's share of load is load/weight.
const (
	// PolicyRoundRobin takes the back-ends in turn, skipping those down
	// ([Pool.PickRoundRobin]); weights are ignored.
	PolicyRoundRobin Policy = iota
	// PolicyWeightedRoundRobin is nginx's smooth weighted round-robin:
	// over any sum-of-weights picks with the same back-ends up, each
	// back-end up is picked exactly its weight times, spread out (weights
	// 5, 1, 1 give a a b a c a a). Back-ends down are skipped.
	PolicyWeightedRoundRobin
	// PolicyLeastConnections picks the back-end up with the least load
	// per unit of weight; ties go round-robin.
	PolicyLeastConnections
	// PolicyLARD is Pai et al.'s locality-aware request distribution
	// (ASPLOS 1998) on the request path: a target (a path) keeps its
	// back-end while that back-end's load is at most LARDHigh, and moves
	// to the least-loaded back-end when the load passes LARDHigh while
	// some back-end is below LARDLow, when it reaches 2*LARDHigh, or when
	// the back-end is down (thresholds are per unit of weight). A new
	// target goes to the least-loaded back-end, ties broken by the target's
	// hash. The target table ([Targets]) is the pool's, shared by the
	// shards, LARDTargets entries in sets of lardWays: a new target
	// replaces the least recently used entry of its set; an evicted target
	// is new again when it comes back. Without a key: as least-connections.
	PolicyLARD
	// PolicyBoundedLoadHash is consistent hashing with bounded loads
	// (Mirrokni, Thorup, Zadimoghaddam, SODA 2018): from the key's point
	// on the ring (Replicas points per unit of weight per back-end), the
	// first back-end up whose load is below
	// ceil(LoadFactor * (total load + 1) * weight / total weight up).
	// Without a key: as least-connections.
	PolicyBoundedLoadHash
	// PolicyCookieAffinity is consistent hashing of a cookie's value on
	// the same ring, without a load bound: from the key's point, the
	// first back-end up, so a back-end going down moves only its own keys,
	// each to the next back-end on the ring. Without a key (no cookie): as
	// least-connections.
	PolicyCookieAffinity
	// PolicySourceAffinity is PolicyCookieAffinity on the client's
	// address.
	PolicySourceAffinity
	numPolicies
)

// policyNames are the configuration names of the policies.
var policyNames = [numPolicies]string{
	"round-robin", "weighted-round-robin", "least-connections", "lard",
	"bounded-load-hash", "cookie-affinity", "source-affinity",
}

// String returns the policy's configuration name.
func (p Policy) String() string {
	if p < numPolicies {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// ParsePolicy returns the policy named s, one of "round-robin",
// "weighted-round-robin", "least-connections", "lard",
// "bounded-load-hash", "cookie-affinity" and "source-affinity".
func ParsePolicy(s string) (Policy, error) {
	if i := slices.Index(policyNames[:], s); i >= 0 {
		return Policy(i), nil
	}
	return 0, fmt.Errorf("%w %q (one of %s)", ErrPolicy, s, strings.Join(policyNames[:], ", "))
}

// Defaults and limits of the policies' parameters (see [Pool]).
const (
	DefaultLoadFactor  = 1.25 // Google's Cloud Pub/Sub and Vimeo use 1.25
	MaxLoadFactor      = 10
	DefaultLARDLow     = 25      // Pai et al.'s T_low
	DefaultLARDHigh    = 65      // Pai et al.'s T_high
	MaxLARDThreshold   = 1 << 20 // live connections per unit of weight
	DefaultLARDTargets = 16384   // 256 KiB per pool
	MaxLARDTargets     = 1 << 22
	DefaultReplicas    = 256 // ring points per unit of weight: shares within about 1/16
	MaxReplicas        = 1024
	MaxWeight          = 256
	maxRingPoints      = 1 << 20 // Replicas * the sum of the weights
	lardWays           = 4       // entries per set of LARD's target table
)

// Errors of [Pool.Validate], wrapped with the pool's name, and of
// [ParsePolicy]; [ErrHashKey] is the other.
var (
	ErrPolicy      = errors.New("unknown policy")
	ErrWeights     = errors.New("weights must be one per back-end, each from 1 to 256")
	ErrDuplicate   = errors.New("a back-end appears twice in the pool")
	ErrLoadFactor  = errors.New("load factor must be from 1 to 10")
	ErrLARDLow     = errors.New("LARD's low threshold must be from 1 to 1048576")
	ErrLARDHigh    = errors.New("LARD's high threshold must be above the low one and at most 1048576")
	ErrLARDTargets = errors.New("LARD target table size must be from 0 to 4194304")
	ErrTargets     = errors.New("a LARD pool needs its target table (Pool.Targets)")
	ErrReplicas    = errors.New("ring replicas must be from 0 to 1024, and replicas times the weights at most 1048576")
)

// Validate checks the pool's policy, key and parameters. The zero value of
// a parameter is its default; the other values must be in the ranges the
// Max constants give.
func (p *Pool) Validate() error {
	err := p.check()
	if err != nil {
		return fmt.Errorf("l7: pool %q: %w", p.Name, err)
	}
	return nil
}

func (p *Pool) check() error {
	if p.Policy >= numPolicies {
		return ErrPolicy
	}
	if p.Weights != nil && len(p.Weights) != len(p.Backends) ||
		slices.ContainsFunc(p.Weights, func(w int) bool { return w < 1 || w > MaxWeight }) {
		return ErrWeights
	}
	seen := make(map[int]bool, len(p.Backends))
	for _, b := range p.Backends {
		if seen[b] {
			return ErrDuplicate
		}
		seen[b] = true
	}
	if err := p.Key.check(p.Policy); err != nil {
		return err
	}
	if p.LoadFactor != 0 && !(p.LoadFactor >= 1 && p.LoadFactor <= MaxLoadFactor) {
		return ErrLoadFactor
	}
	low, high := p.lardThresholds()
	if low < 1 || low > MaxLARDThreshold {
		return ErrLARDLow
	}
	if high <= low || high > MaxLARDThreshold {
		return ErrLARDHigh
	}
	if p.LARDTargets < 0 || p.LARDTargets > MaxLARDTargets {
		return ErrLARDTargets
	}
	if p.Policy == PolicyLARD && p.Targets == nil {
		return ErrTargets
	}
	if r := p.replicas(); r < 1 || r > MaxReplicas || r*p.totalWeight() > maxRingPoints {
		return ErrReplicas
	}
	return nil
}

// weight returns the weight of the back-end in slot s.
func (p *Pool) weight(s int) int {
	if p.Weights == nil {
		return 1
	}
	return p.Weights[s]
}

func (p *Pool) totalWeight() int {
	total := 0
	for s := range p.Backends {
		total += p.weight(s)
	}
	return total
}

func (p *Pool) replicas() int { return cmp.Or(p.Replicas, DefaultReplicas) }

func (p *Pool) lardThresholds() (low, high int64) {
	return cmp.Or(p.LARDLow, DefaultLARDLow), cmp.Or(p.LARDHigh, DefaultLARDHigh)
}

// Picker picks a back-end of one pool for each new connection. Each shard
// makes its own with [NewPicker]: a Picker holds the shard's part of the
// policy's state (a cursor, smooth weights, the ring and its scratch
// loads), is not safe for concurrent use, and its Pick does not allocate.
// The part that must be the same for every shard, LARD's target table, is
// the pool's ([Pool.Targets]), shared by its pickers.
type Picker interface {
	// Pick returns a back-end of the pool (an entry of its Backends) for
	// which up returns true, or ok false when there is none (the switch
	// answers 503). key is the connection's key ([Pool.Key]; read during
	// the call only, may be empty; the policies without a key ignore it);
	// load(b) is the number of live connections of back-end b. Pick may
	// call up and load several times for the same back-end.
	Pick(key []byte, load func(b int) int64, up func(b int) bool) (backend int, ok bool)
}

// NewPicker returns a picker for p's policy, for one shard. The picker
// keeps p's slices and target table: p must not change afterwards. p must
// be valid ([Pool.Validate]): NewPicker panics otherwise.
//
// The cursors of round-robin and of least-connections' ties, and the
// current values of weighted round-robin, are per shard: each shard spreads
// its own connections evenly, so the shards together do too, and no shard
// waits for another. The loads that least-connections, bounded-load
// hashing and LARD compare are the switch's, shared by the shards; the
// hashing policies' rings depend on the pool only, so every shard maps a
// key alike.
func NewPicker(p *Pool) Picker {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	m := members{backends: p.Backends, weights: make([]int64, len(p.Backends))}
	for s := range p.Backends {
		m.weights[s] = int64(p.weight(s))
	}
	switch p.Policy {
	case PolicyWeightedRoundRobin:
		return &wrrPicker{members: m, current: make([]int64, len(p.Backends))}
	case PolicyLeastConnections:
		return &lcPicker{members: m}
	case PolicyLARD:
		return newLARDPicker(m, p)
	case PolicyBoundedLoadHash, PolicyCookieAffinity, PolicySourceAffinity:
		return newRingPicker(m, p)
	}
	return &rrPicker{pool: p}
}

// members are a pool's back-ends and weights by slot, with a round-robin
// cursor for breaking ties.
type members struct {
	backends []int
	weights  []int64
	cursor   int // a slot
}

// leastLoaded returns the slot of the back-end up with the least load per
// unit of weight: the first such in slot order from slot start, which must
// be from 0 to the number of back-ends. ok is false when none is up.
func (m *members) leastLoaded(start int, load func(int) int64, up func(int) bool) (slot int, ok bool) {
	n := len(m.backends)
	best, bestLoad := -1, int64(0)
	for i := range n {
		s := (start + i) % n
		b := m.backends[s]
		if !up(b) {
			continue
		}
		if l := load(b); best < 0 || l*m.weights[best] < bestLoad*m.weights[s] {
			best, bestLoad = s, l
		}
	}
	return best, best >= 0
}

// leastConnections is the least-connections policy: the least-loaded
// back-end up, from the cursor, which then moves past it.
func (m *members) leastConnections(load func(int) int64, up func(int) bool) (int, bool) {
	s, ok := m.leastLoaded(m.cursor, load, up)
	if !ok {
		return 0, false
	}
	m.cursor = (s + 1) % len(m.backends)
	return m.backends[s], true
}

// rrPicker is PolicyRoundRobin.
type rrPicker struct {
	pool   *Pool
	cursor uint32
}

func (p *rrPicker) Pick(_ []byte, _ func(int) int64, up func(int) bool) (int, bool) {
	return p.pool.PickRoundRobin(&p.cursor, up)
}

// lcPicker is PolicyLeastConnections.
type lcPicker struct{ members }

func (p *lcPicker) Pick(_ []byte, load func(int) int64, up func(int) bool) (int, bool) {
	return p.leastConnections(load, up)
}

// wrrPicker is PolicyWeightedRoundRobin: each pick adds every back-end
// up's weight to its current value and takes the back-end with the
// largest, the first in slot order on ties, whose value then drops by the
// sum of the weights up.
type wrrPicker struct {
	members
	current []int64 // by slot
}

func (p *wrrPicker) Pick(_ []byte, _ func(int) int64, up func(int) bool) (int, bool) {
	best, total := -1, int64(0)
	for s, b := range p.backends {
		if !up(b) {
			continue
		}
		p.current[s] += p.weights[s]
		total += p.weights[s]
		if best < 0 || p.current[s] > p.current[best] {
			best = s
		}
	}
	if best < 0 {
		return 0, false
	}
	p.current[best] -= total
	return p.backends[best], true
}
