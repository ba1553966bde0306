package shard

import (
	"runtime"
	"testing"
	"time"
	"unsafe"

	"webswitch/internal/mono"
)

// fillSpliced puts n spliced flows in a new table, each with a timer, as
// handoffDone leaves them, and returns the table and the wheel.
func fillSpliced(n int) (*table, *wheel) {
	tab := newTable(n, 1024, 1024)
	w := newWheel(wheelSlots, wheelTick, 0)
	for k := range n {
		i, _ := tab.add(uint64(k)*2654435761 + 1)
		fl := &tab.flows[i]
		fl.state = flowSpliced
		tab.release(fl)
		w.set(tab.flows, i, mono.Time(k%300_000)*mono.Time(time.Millisecond)+1)
	}
	return tab, w
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestSplicedFlowMemory: a spliced flow costs at most 128 bytes (slot, index
// and timer), so one million fit in 128 MiB, well within the 256 MiB the
// bench issue allows.
func TestSplicedFlowMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a table of one million flows")
	}
	const n = 1 << 20
	if size := unsafe.Sizeof(flow{}); size > 64 {
		t.Errorf("flow is %d bytes, want at most 64", size)
	}
	before := heapInUse()
	tab, w := fillSpliced(n)
	used := heapInUse() - before
	perFlow := float64(used) / n
	t.Logf("%d spliced flows: %.1f MiB, %.1f bytes per flow (flow struct %d bytes)", n, float64(used)/(1<<20), perFlow, unsafe.Sizeof(flow{}))
	if perFlow > 128 {
		t.Errorf("%.1f bytes per spliced flow, want at most 128", perFlow)
	}
	runtime.KeepAlive(tab)
	runtime.KeepAlive(w)
}

// BenchmarkFillSplicedFlows reports the memory of a table of one million
// spliced flows and the time to fill it.
func BenchmarkFillSplicedFlows(b *testing.B) {
	const n = 1 << 20
	for b.Loop() {
		before := heapInUse()
		tab, w := fillSpliced(n)
		used := heapInUse() - before
		b.ReportMetric(float64(used)/n, "B/flow")
		b.ReportMetric(float64(used)/(1<<20), "MiB/1M-flows")
		runtime.KeepAlive(tab)
		runtime.KeepAlive(w)
	}
}
