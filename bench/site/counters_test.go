package site

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSwitchLogLatest(t *testing.T) {
	log := []byte(`{"level":"info","shards":2,"interface":"eth0","message":"switch running"}
not json
{"level":"info","counters":{"shard":0,"frames_in":1},"message":"shard counters"}
{"level":"info","counters":{"shard":1,"frames_in":2},"message":"shard counters"}
{"level":"info","counters":{"shard":0,"frames_in":3},"message":"shard counters"}
{"level":"info","counters":{"shard":1,"frames_in":4},"message":"shard counters"}
{"level":"info","counters":{"shard":0,"frames_in":5},"message":"shard counters"}
`)
	l := parseSwitchLog(log)
	if l.shards != 2 || len(l.counters) != 5 {
		t.Fatalf("parsed %d shards, %d counter lines; want 2, 5", l.shards, len(l.counters))
	}
	for _, tc := range []struct {
		name     string
		from     int
		complete bool
		want     map[int]float64 // frames_in by shard
	}{
		{"all lines", 0, true, map[int]float64{0: 5, 1: 4}},
		{"after the first round", 2, true, map[int]float64{0: 5, 1: 4}},
		{"shard 1 missing", 4, false, map[int]float64{0: 5}},
		{"nothing new", 5, false, map[int]float64{}},
		{"past the end", 9, false, map[int]float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, complete := l.latest(tc.from)
			frames := map[int]float64{}
			for shard, c := range got {
				frames[shard] = c["frames_in"].(float64)
			}
			if complete != tc.complete {
				t.Errorf("complete = %v, want %v", complete, tc.complete)
			}
			if diff := cmp.Diff(tc.want, frames); diff != "" {
				t.Errorf("frames_in by shard (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSwitchLogWithoutStartLine(t *testing.T) {
	l := parseSwitchLog([]byte(`{"counters":{"shard":0},"message":"shard counters"}` + "\n"))
	if _, complete := l.latest(0); complete {
		t.Error("counters count as complete although the shard count is unknown")
	}
}
