package l7

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPickRoundRobin(t *testing.T) {
	tests := []struct {
		name     string
		backends []int
		down     map[int]bool
		cursor   uint32
		picks    int
		want     map[int]int // picks per back-end
	}{
		{name: "even shares", backends: []int{7, 8, 9}, picks: 300, want: map[int]int{7: 100, 8: 100, 9: 100}},
		{name: "down skipped", backends: []int{7, 8, 9}, down: map[int]bool{8: true}, picks: 300, want: map[int]int{7: 150, 9: 150}},
		{name: "only one up", backends: []int{1, 2, 3, 4}, down: map[int]bool{1: true, 2: true, 4: true}, picks: 10, want: map[int]int{3: 10}},
		{name: "any cursor value", backends: []int{0, 1}, cursor: ^uint32(0), picks: 10, want: map[int]int{0: 5, 1: 5}},
		{name: "single back-end", backends: []int{5}, picks: 3, want: map[int]int{5: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Pool{Name: tt.name, Backends: tt.backends}
			calls := 0
			up := func(b int) bool { calls++; return !tt.down[b] }
			got := map[int]int{}
			cursor := tt.cursor
			for range tt.picks {
				calls = 0
				b, ok := p.PickRoundRobin(&cursor, up)
				if !ok {
					t.Fatal("no back-end picked")
				}
				if calls > len(tt.backends) {
					t.Fatalf("up called %d times for %d back-ends", calls, len(tt.backends))
				}
				got[b]++
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("picks mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPickRoundRobinOrder(t *testing.T) {
	p := Pool{Backends: []int{10, 11, 12}}
	var cursor uint32
	var got []int
	for range 6 {
		b, _ := p.PickRoundRobin(&cursor, func(int) bool { return true })
		got = append(got, b)
	}
	if diff := cmp.Diff([]int{10, 11, 12, 10, 11, 12}, got); diff != "" {
		t.Fatalf("order mismatch (-want +got):\n%s", diff)
	}
}

func TestPickRoundRobinNoneUp(t *testing.T) {
	for _, p := range []Pool{{Name: "empty"}, {Name: "all down", Backends: []int{1, 2}}} {
		t.Run(p.Name, func(t *testing.T) {
			cursor := uint32(1)
			if b, ok := p.PickRoundRobin(&cursor, func(int) bool { return false }); ok {
				t.Fatalf("picked %d from a pool with none up", b)
			}
			if cursor != 1 {
				t.Fatalf("cursor moved to %d", cursor)
			}
		})
	}
}
