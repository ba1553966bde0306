package shard

import (
	"slices"
	"testing"
	"time"

	"webswitch/internal/mono"
)

const ms = time.Millisecond

func TestWheel(t *testing.T) {
	tab := newTable(16, 64, 64)
	w := newWheel(8, 10*ms, 0)
	deadlines := map[int32]mono.Time{}
	for k, d := range []time.Duration{5 * ms, 25 * ms, 95 * ms, 400 * ms, 25 * ms} {
		i, ok := tab.add(uint64(k))
		if !ok {
			t.Fatal("table full")
		}
		w.set(tab.flows, i, mono.Time(d))
		deadlines[i] = mono.Time(d)
	}
	// Moving a timer and stopping one.
	w.set(tab.flows, 1, mono.Time(35*ms))
	deadlines[1] = mono.Time(35 * ms)
	w.set(tab.flows, 4, 0)
	delete(deadlines, 4)

	var fired []int32
	for now := mono.Time(0); now <= mono.Time(500*ms); now = now.Add(7 * ms) {
		w.advance(tab.flows, now, func(i int32) {
			if deadlines[i] > now {
				t.Errorf("flow %d fired at %d, deadline %d", i, now, deadlines[i])
			}
			if now.Sub(deadlines[i]) > 10*ms+7*ms {
				t.Errorf("flow %d fired late: %d for %d", i, now, deadlines[i])
			}
			fired = append(fired, i)
		})
	}
	if want := []int32{0, 1, 2, 3}; !slices.Equal(fired, want) {
		t.Errorf("fired %v, want %v", fired, want)
	}
}

func TestTableFullAndReuse(t *testing.T) {
	tab := newTable(2, 64, 64)
	a, _ := tab.add(1)
	tab.add(2)
	if _, ok := tab.add(3); ok {
		t.Fatal("table accepted a flow beyond max")
	}
	gen := tab.flows[a].gen
	tab.remove(a)
	b, ok := tab.add(3)
	if !ok || b != a || tab.flows[b].gen == gen {
		t.Errorf("slot not reused with a new generation: %d %v", b, ok)
	}
	if i, ok := tab.lookup(3); !ok || i != b {
		t.Error("lookup after reuse")
	}
	if _, ok := tab.lookup(1); ok {
		t.Error("removed flow still found")
	}
	tab.release(&tab.flows[b])
	if tab.flows[b].conn != nil || len(tab.conns) != 1 {
		t.Errorf("conn not pooled: %d pooled", len(tab.conns))
	}
}
