package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"webswitch/bench/attack"
	"webswitch/bench/load"
)

func TestSYNFloodBadArguments(t *testing.T) {
	// Each command line is rejected before a testbed is made.
	for name, args := range map[string][]string{
		"unknown flag":        {"-bogus"},
		"positional argument": {"extra"},
		"zero duration":       {"-d", "0s"},
		"negative rate":       {"-rate", "-1"},
		"no shards":           {"-shards", "0"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runSYNFlood(args, &stdout, &stderr)
			if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), "usage: wsbench synflood") {
				t.Errorf("runSYNFlood(%q): %v, stderr %q; want a usage error and the usage", args, err, stderr.String())
			}
		})
	}
}

func TestPrintSYNFlood(t *testing.T) {
	res := attack.FloodTrialResult{
		Flood:   attack.FloodResult{Seconds: 10, Sent: 840451, SendErrors: 3069, Rate: 84045.1, SenderCPU: 0.42},
		Load:    load.Result{Requests: 3447, Errors: map[string]uint64{load.ErrTimeout: 2}, Seconds: 8},
		Success: 3447.0 / 3449, SYNAcks: 803178, SYNAckRate: 80317.8, RingDrops: 41835,
		Flows: 4302, ActiveFlowsBefore: 1, ActiveFlowsAfter: 4072,
		Switch:     attack.ProcUsage{CPU: 0.93, RSSBefore: 80 << 20, RSSMax: 82 << 20, RSSAfter: 81 << 20},
		MachineCPU: 1.97, NumCPU: 2,
	}
	var b bytes.Buffer
	printSYNFlood(&b, &res)
	for _, want := range []string{
		"84045 SYNs/s offered (840451 sent, 3069 send errors",
		"80318 SYN-ACKs/s (803178), ring drops 41835",
		"4302 connections accepted, active flows 1 -> 4072",
		"80.0 MiB before, 82.0 MiB at most during the flood, 81.0 MiB after",
		"webswitch 0.93, whole machine 1.97",
		"99.94 % of its requests succeeded",
		"errors: timeout 2",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}
