// Package seqnum holds TCP sequence numbers and the modular (wrap-safe)
// arithmetic on them. Never compare two Values with < directly.
package seqnum

// Value is a TCP sequence number.
type Value uint32

// Size is a distance between two sequence numbers or a window size.
type Size uint32

// LessThan reports whether v comes before w in sequence space.
func (v Value) LessThan(w Value) bool { return int32(v-w) < 0 }

// LessThanEq reports whether v is w or comes before it.
func (v Value) LessThanEq(w Value) bool { return v == w || v.LessThan(w) }

// InRange reports whether a <= v < b.
func (v Value) InRange(a, b Value) bool { return v-a < b-a }

// InWindow reports whether v is in the window [first, first+size).
func (v Value) InWindow(first Value, size Size) bool { return v.InRange(first, first.Add(size)) }

// Add returns v+s.
func (v Value) Add(s Size) Value { return v + Value(s) }

// Size returns the distance from v to w (w must not come before v).
func (v Value) Size(w Value) Size { return Size(w - v) }

// Max returns the later of v and w.
func Max(v, w Value) Value {
	if v.LessThan(w) {
		return w
	}
	return v
}
