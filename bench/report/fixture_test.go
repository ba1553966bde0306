package report

import "webswitch/bench/load"

// Response sizes of the fixture.
const (
	kib1   = 1 << 10
	kib100 = 100 << 10
	mib1   = 1 << 20
	mib10  = 10 << 20
)

// benchRow is a row of a 10-second closed-loop run with 64 connections.
func benchRow(setup string, size int64, keepAlive bool, rps float64, lat load.Latency, cpu float64) Row {
	const seconds = 10
	requests := uint64(rps * seconds)
	connects := uint64(64)
	if !keepAlive {
		connects = requests
	}
	return Row{
		Setup:     setup,
		Size:      size,
		KeepAlive: keepAlive,
		Load: load.Result{
			URLs:        []string{"http://198.18.0.10/f"},
			Mode:        load.ModeClosed,
			KeepAlive:   keepAlive,
			Connections: 64,
			Seconds:     seconds,
			Requests:    requests,
			Connects:    connects,
			BodyBytes:   requests * uint64(size),
			RPS:         rps,
			MBps:        rps * float64(size) / 1e6,
			Latency:     lat,
		},
		CPUPer1k:    cpu,
		MachineBusy: 0.97,
	}
}

// ms is a latency summary from p50, p99 and p99.9.
func ms(p50, p99, p999 float64) load.Latency {
	return load.Latency{P50: p50, P90: (p50 + p99) / 2, P99: p99, P999: p999, Max: 2 * p999, Mean: p50 * 1.1}
}

// fixture is a whole run: four sizes keep-alive and two with a new
// connection per request, all four set-ups, a wrk cross-check at 1 MiB,
// targets met and not met, notes. Its rows are grouped by set-up, not in
// display order.
func fixture() *Report {
	r := &Report{
		Command: "wsbench bench -sizes 1k,100k,1m,10m -new-conn-sizes 1k,1m -duration 10s -connections 64 -wrk 1m -out bench/out",
		Machine: "AMD EPYC 7B13, 2 cores, Linux 6.12.38",
		Date:    "2026-03-14T09:26:53Z",
		Rows: []Row{
			benchRow(SetupNginx, kib1, true, 24800, ms(1.9, 6.2, 11.4), 0.041),
			benchRow(SetupNginx, kib100, true, 6100, ms(8.8, 21, 34), 0.17),
			benchRow(SetupNginx, mib1, true, 700, ms(88, 190, 260), 1.4),
			benchRow(SetupNginx, mib10, true, 66, ms(910, 1620, 2100), 13.9),
			benchRow(SetupNginx, kib1, false, 8200, ms(6.1, 19, 41), 0.12),
			benchRow(SetupNginx, mib1, false, 610, ms(101, 230, 330), 1.5),

			benchRow(SetupHAProxy, kib1, true, 21500, ms(2.3, 7.9, 15.2), 0.048),
			benchRow(SetupHAProxy, kib100, true, 5200, ms(10.4, 26, 45), 0.19),
			benchRow(SetupHAProxy, mib1, true, 610, ms(101, 240, 310), 1.6),
			benchRow(SetupHAProxy, mib10, true, 58, ms(1050, 1900, 2500), 15.8),
			benchRow(SetupHAProxy, kib1, false, 7100, ms(7.2, 24, 52), 0.14),
			benchRow(SetupHAProxy, mib1, false, 540, ms(115, 260, 390), 1.7),

			benchRow(SetupWebswitch, kib1, true, 40100, ms(1.2, 4.1, 7.3), 0.021),
			benchRow(SetupWebswitch, kib100, true, 9650, ms(5.9, 12.8, 19.5), 0.024),
			benchRow(SetupWebswitch, mib1, true, 1090, ms(57, 98, 131), 0.031),
			benchRow(SetupWebswitch, mib10, true, 110, ms(571, 802, 955), 0.05),
			benchRow(SetupWebswitch, kib1, false, 9400, ms(5.3, 17, 1030), 0.094),
			benchRow(SetupWebswitch, mib1, false, 940, ms(64, 121, 170), 0.11),

			benchRow(SetupDirect, kib1, true, 42000, ms(0.087, 3.9, 6.8), -1),
			benchRow(SetupDirect, kib100, true, 9800, ms(5.8, 12.4, 18.7), -1),
			benchRow(SetupDirect, mib1, true, 1120, ms(56, 95, 126), -1),
			benchRow(SetupDirect, mib10, true, 112, ms(566, 790, 940), -1),
			benchRow(SetupDirect, kib1, false, 15800, ms(3.1, 9.8, 21), -1),
			benchRow(SetupDirect, mib1, false, 1010, ms(60, 110, 160), -1),
		},
		Targets: []Target{
			{Name: "1 MiB keep-alive: webswitch >= 0.9x direct", Got: "0.97x", Met: true},
			{Name: "1 KiB new conn: webswitch >= 0.8x direct", Got: "0.59x", Met: false},
			{Name: "no ring drops", Got: "12", Met: false},
		},
		Notes: []string{
			"Client, switch and back-ends share the 2 cores of one machine: compare set-ups, not absolute figures.",
			"wrk cross-check at 1 MiB keep-alive only.",
		},
	}
	for i := range r.Rows {
		row := &r.Rows[i]
		switch {
		case row.Setup == SetupWebswitch && row.Size == kib1 && !row.KeepAlive:
			row.Load.Errors = map[string]uint64{load.ErrTimeout: 3, load.ErrRead: 1}
			row.RingDrops, row.Retrans = 12, 41
		case row.Setup == SetupHAProxy && row.Size == mib10:
			row.Retrans = 7
		}
		if row.Size == mib1 && row.KeepAlive {
			row.Wrk = &Wrk{RPS: row.Load.RPS * 1.02, MBps: row.Load.MBps * 1.02}
			if row.Setup == SetupHAProxy {
				row.Wrk.Errors = 2
			}
		}
	}
	return r
}
