package l7

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

// Constants of hashKey (xxHash64's primes) and of the ring points.
const (
	hashPrime1 = 0x9E3779B185EBCA87
	hashPrime2 = 0xC2B2AE3D27D4EB4F
	hashPrime4 = 0x85EBCA77C2B2AE63
)

// hashKey returns a 64-bit hash of key: xxHash64's rounds over 8-byte
// words and a splitmix64 finish. It is the same in every shard, process
// and machine, so that a key keeps its back-end across restarts.
func hashKey(key []byte) uint64 {
	h := uint64(len(key)) * hashPrime1
	for ; len(key) >= 8; key = key[8:] {
		h ^= hashRound(binary.LittleEndian.Uint64(key))
		h = bits.RotateLeft64(h, 27)*hashPrime1 + hashPrime4
	}
	var tail uint64
	for i, c := range key {
		tail |= uint64(c) << (8 * i)
	}
	return mix64(h ^ hashRound(tail))
}

// hashRound is xxHash64's round of one word into a zero accumulator.
func hashRound(w uint64) uint64 {
	return bits.RotateLeft64(w*hashPrime2, 31) * hashPrime1
}

// mix64 is splitmix64's finaliser: every bit of x affects every bit of the
// result.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	return x ^ x>>31
}

// ringPicker is the hashing and affinity policies. The ring holds, for
// each back-end b of weight w, Replicas*w points at
// mix64(mix64(b) + i*hashPrime1): they depend on the back-end's index
// only, so a back-end that joins or leaves a pool moves only the keys
// between its points and their predecessors.
type ringPicker struct {
	members
	points []uint64 // sorted
	slots  []int32  // slots[i] is the slot of the back-end of points[i]
	// Bounded loads: the load factor, and per slot the load and whether
	// the back-end may take the key, filled by each Pick.
	bounded  bool
	factor   float64
	loads    []int64
	eligible []bool
}

func newRingPicker(m members, p *Pool) *ringPicker {
	type point struct {
		hash uint64
		slot int32
	}
	var pts []point
	for s, b := range m.backends {
		base := mix64(uint64(b))
		for i := range p.replicas() * int(m.weights[s]) {
			pts = append(pts, point{mix64(base + uint64(i)*hashPrime1), int32(s)})
		}
	}
	slices.SortFunc(pts, func(a, b point) int { return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.slot, b.slot)) })
	r := &ringPicker{
		members: m, points: make([]uint64, len(pts)), slots: make([]int32, len(pts)),
		bounded: p.Policy == PolicyBoundedLoadHash, factor: cmp.Or(p.LoadFactor, DefaultLoadFactor),
		loads: make([]int64, len(m.backends)), eligible: make([]bool, len(m.backends)),
	}
	for i, pt := range pts {
		r.points[i], r.slots[i] = pt.hash, pt.slot
	}
	return r
}

func (p *ringPicker) Pick(key []byte, load func(int) int64, up func(int) bool) (int, bool) {
	if len(key) == 0 || len(p.points) == 0 {
		return p.leastConnections(load, up)
	}
	if p.bounded && !p.markEligible(load, up) {
		return 0, false
	}
	i := p.search(hashKey(key))
	for range len(p.points) {
		s := p.slots[i]
		if b := p.backends[s]; p.bounded && p.eligible[s] || !p.bounded && up(b) {
			return b, true
		}
		if i++; i == len(p.points) {
			i = 0
		}
	}
	return 0, false
}

// search returns the index of the first point at or after h, clockwise.
func (p *ringPicker) search(h uint64) int {
	lo, hi := 0, len(p.points)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.points[m] < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(p.points) {
		return 0
	}
	return lo
}

// markEligible sets p.eligible[s] for the back-ends up whose load is below
// their bound, ceil(c * (total load + 1) * weight / total weight up), and
// reports whether any back-end is up. Some back-end up is then eligible:
// the bounds add up to at least c * (total load + 1), more than the total
// load.
func (p *ringPicker) markEligible(load func(int) int64, up func(int) bool) bool {
	var total, weightUp int64
	for s, b := range p.backends {
		p.eligible[s] = up(b)
		if p.eligible[s] {
			p.loads[s] = load(b)
			total += p.loads[s]
			weightUp += p.weights[s]
		}
	}
	for s := range p.backends {
		bound := math.Ceil(p.factor * float64((total+1)*p.weights[s]) / float64(weightUp))
		p.eligible[s] = p.eligible[s] && float64(p.loads[s]) < bound
	}
	return weightUp > 0
}
