package site

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// counterWait bounds how long ShardCounters waits for the switch's answer.
const counterWait = 5 * time.Second

// errNoShards reports a switch log without the "switch running" line that
// says how many shards there are.
var errNoShards = errors.New("site: switch log does not say how many shards run")

// switchLog is what ShardCounters reads from the switch's JSON log.
type switchLog struct {
	shards   int              // from the "switch running" line; 0 if not seen yet
	counters []map[string]any // the "shard counters" lines, in log order
}

// parseSwitchLog reads the lines of the switch's JSON log that ShardCounters
// needs; other lines, and lines that are not JSON, are skipped.
func parseSwitchLog(data []byte) switchLog {
	var l switchLog
	for line := range bytes.Lines(data) {
		var rec struct {
			Message  string         `json:"message"`
			Shards   int            `json:"shards"`
			Counters map[string]any `json:"counters"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		switch rec.Message {
		case "switch running":
			l.shards = rec.Shards
		case "shard counters":
			if rec.Counters != nil {
				l.counters = append(l.counters, rec.Counters)
			}
		}
	}
	return l
}

// latest returns the last of the counter lines from index from on for each
// shard, keyed by shard number, and whether every shard has one.
func (l switchLog) latest(from int) (map[int]map[string]any, bool) {
	got := map[int]map[string]any{}
	for _, c := range l.counters[min(from, len(l.counters)):] {
		if n, ok := c["shard"].(float64); ok {
			got[int(n)] = c
		}
	}
	for i := range l.shards {
		if got[i] == nil {
			return got, false
		}
	}
	return got, l.shards > 0
}

// ShardCounters makes the switch log its counters (SIGUSR1) and returns each
// shard's counters as logged, keyed by shard number: JSON numbers are
// float64, as encoding/json decodes them into an interface. The counters are
// those of the moment the switch took the signal; it waits at most 5 s for
// them.
func (s *Site) ShardCounters() (map[int]map[string]any, error) {
	return s.ShardCountersN(0)
}

// ShardCountersN is ShardCounters for switch i (counting from 0).
func (s *Site) ShardCountersN(i int) (map[int]map[string]any, error) {
	sw, log := s.Switches[i], s.SwitchLogs[i]
	data, err := os.ReadFile(log)
	if err != nil {
		return nil, err
	}
	before := parseSwitchLog(data)
	if before.shards == 0 {
		return nil, errNoShards
	}
	if err := sw.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return nil, fmt.Errorf("site: signal switch %d: %w", i, err)
	}
	deadline := time.Now().Add(counterWait)
	for {
		time.Sleep(5 * time.Millisecond)
		if data, err = os.ReadFile(log); err != nil {
			return nil, err
		}
		got, ok := parseSwitchLog(data).latest(len(before.counters))
		if ok {
			return got, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("site: switch %d logged no counters within %v of SIGUSR1 (log %s)", i, counterWait, log)
		}
	}
}

// SumCounter returns the sum over the shards of a numeric counter in
// counters (as ShardCounters returns them), 0 where a shard lacks it.
func SumCounter(counters map[int]map[string]any, name string) float64 {
	var sum float64
	for _, c := range counters {
		if v, ok := c[name].(float64); ok {
			sum += v
		}
	}
	return sum
}
