package scenario

import (
	"fmt"

	"webswitch/bench/report"
)

// Targets checks the bench issue's goals that the rows can show.
func Targets(rows []report.Row) []report.Target {
	find := func(setup string, size int64, keepAlive bool) *report.Row {
		for i := range rows {
			r := &rows[i]
			if r.Setup == setup && r.Size == size && r.KeepAlive == keepAlive {
				return r
			}
		}
		return nil
	}
	rps := func(r *report.Row) float64 { return r.Load.RPS }
	cpu := func(r *report.Row) float64 { return r.CPUPer1k }
	// ratio is a target "webswitch's figure / other's figure within limit":
	// at least limit when atLeast, else at most.
	ratio := func(name string, size int64, keepAlive bool, other string, figure func(*report.Row) float64, limit float64, atLeast bool) report.Target {
		t := report.Target{Name: name, Got: "not measured"}
		w, o := find(report.SetupWebswitch, size, keepAlive), find(other, size, keepAlive)
		if w == nil || o == nil || figure(o) <= 0 || figure(w) < 0 {
			return t
		}
		r := figure(w) / figure(o)
		t.Got = fmt.Sprintf("%.2fx (%.4g vs %.4g)", r, figure(w), figure(o))
		t.Met = atLeast && r >= limit || !atLeast && r <= limit
		return t
	}
	ts := []report.Target{
		ratio("1 MiB keep-alive: webswitch req/s >= 0.9x direct", MiB, true, report.SetupDirect, rps, 0.9, true),
		ratio("1 MiB keep-alive: webswitch req/s >= 1.5x HAProxy", MiB, true, report.SetupHAProxy, rps, 1.5, true),
		ratio("1 MiB keep-alive: switch CPU per request <= 0.1x HAProxy's", MiB, true, report.SetupHAProxy, cpu, 0.1, false),
		ratio("1 KiB new connections: switch CPU per request <= HAProxy's", KiB, false, report.SetupHAProxy, cpu, 1, false),
		ratio("1 KiB new connections: webswitch connections/s >= HAProxy's", KiB, false, report.SetupHAProxy, rps, 1, true),
	}
	var drops uint64
	measured := false
	for _, r := range rows {
		if r.Setup == report.SetupWebswitch {
			drops += r.RingDrops
			measured = true
		}
	}
	drop := report.Target{Name: "no ring drops at these loads", Got: "not measured"}
	if measured {
		drop.Got, drop.Met = fmt.Sprintf("%d drops", drops), drops == 0
	}
	return append(ts, drop)
}
