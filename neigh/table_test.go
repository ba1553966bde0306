package neigh

import "testing"

func TestTable(t *testing.T) {
	mac := [6]byte{2, 0, 0, 0, 0, 21}
	other := [6]byte{2, 0, 0, 0, 0, 99}
	tab := NewTable(2)
	if _, ok := tab.Lookup(0); ok || tab.Resolved() {
		t.Fatal("a new table knows an address")
	}
	for _, c := range []struct {
		name        string
		b           int
		mac         [6]byte
		wantChanged bool
	}{
		{"new", 0, mac, true},
		{"same again", 0, mac, false},
		{"changed", 0, other, true},
		{"second", 1, mac, true},
	} {
		if got := tab.Set(c.b, c.mac); got != c.wantChanged {
			t.Errorf("%s: Set = %v, want %v", c.name, got, c.wantChanged)
		}
		if got, ok := tab.Lookup(c.b); !ok || got != c.mac {
			t.Errorf("%s: Lookup = %v %v, want %v", c.name, got, ok, c.mac)
		}
	}
	if !tab.Resolved() {
		t.Error("not resolved with every address set")
	}
	tab.Grow(3)
	if got, ok := tab.Lookup(0); !ok || got != other {
		t.Errorf("Grow lost back-end 0: %v %v", got, ok)
	}
	if tab.Resolved() {
		t.Error("resolved with back-end 2 unknown")
	}
	tab.Grow(1) // never shrinks
	if _, ok := tab.Lookup(2); ok {
		t.Error("back-end 2 known before Set")
	}
	tab.Set(4, mac) // beyond the table: grows it
	for b, want := range []bool{true, true, false, false, true, false} {
		if _, ok := tab.Lookup(b); ok != want {
			t.Errorf("after Set(4): Lookup(%d) ok = %v, want %v", b, ok, want)
		}
	}
	if _, ok := tab.Lookup(-1); ok {
		t.Error("Lookup(-1) ok")
	}
}

func TestLookupNoAllocs(t *testing.T) {
	tab := NewTable(4)
	tab.Set(2, [6]byte{2, 0, 0, 0, 0, 23})
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := tab.Lookup(2); !ok {
			t.Fatal("back-end 2 unknown")
		}
	}); n != 0 {
		t.Errorf("Lookup: %v allocations, want 0", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	tab := NewTable(8)
	tab.Set(3, [6]byte{2, 0, 0, 0, 0, 24})
	b.ReportAllocs()
	for b.Loop() {
		tab.Lookup(3)
	}
}
