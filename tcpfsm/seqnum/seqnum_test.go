package seqnum

import "testing"

func TestCompare(t *testing.T) {
	tests := []struct {
		name     string
		v, w     Value
		lessThan bool
	}{
		{"plain", 1, 2, true},
		{"equal", 5, 5, false},
		{"greater", 9, 2, false},
		{"wrap", 0xFFFFFFF0, 0x10, true},
		{"wrap reverse", 0x10, 0xFFFFFFF0, false},
		{"half space", 0, 0x7FFFFFFF, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.LessThan(tt.w); got != tt.lessThan {
				t.Errorf("%d.LessThan(%d) = %v, want %v", tt.v, tt.w, got, tt.lessThan)
			}
			if got := tt.v.LessThanEq(tt.w); got != (tt.lessThan || tt.v == tt.w) {
				t.Errorf("%d.LessThanEq(%d) = %v", tt.v, tt.w, got)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	tests := []struct {
		name  string
		v     Value
		first Value
		size  Size
		in    bool
	}{
		{"start", 100, 100, 10, true},
		{"last", 109, 100, 10, true},
		{"right edge", 110, 100, 10, false},
		{"before", 99, 100, 10, false},
		{"empty window", 100, 100, 0, false},
		{"across wrap", 3, 0xFFFFFFFE, 10, true},
		{"after wrap window", 9, 0xFFFFFFFE, 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.InWindow(tt.first, tt.size); got != tt.in {
				t.Errorf("%d.InWindow(%d, %d) = %v, want %v", tt.v, tt.first, tt.size, got, tt.in)
			}
		})
	}
	if got := Value(0xFFFFFFFF).Size(Value(4)); got != 5 {
		t.Errorf("Size across wrap = %d, want 5", got)
	}
	if got := Max(0xFFFFFFFF, 2); got != 2 {
		t.Errorf("Max across wrap = %d, want 2", got)
	}
}
