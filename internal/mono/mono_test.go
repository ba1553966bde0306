package mono

import (
	"testing"
	"time"
)

func TestArithmetic(t *testing.T) {
	t0 := Time(1000)
	if got := t0.Add(5 * time.Nanosecond); got != 1005 {
		t.Errorf("Add = %d, want 1005", got)
	}
	if got := Time(1005).Sub(t0); got != 5*time.Nanosecond {
		t.Errorf("Sub = %v, want 5ns", got)
	}
}

func TestClockMovesForwardFromWallTime(t *testing.T) {
	before := time.Now().UnixNano()
	clock := Clock()
	a := clock()
	b := clock()
	if int64(a) < before || b < a {
		t.Errorf("clock read %d then %d, want >= %d and non-decreasing", a, b, before)
	}
}
