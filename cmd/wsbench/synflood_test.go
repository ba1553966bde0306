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
		"unknown kind":        {"-kind", "rst"},
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

func TestPrintFlood(t *testing.T) {
	usage := attack.ProcUsage{CPU: 0.93, RSSBefore: 80 << 20, RSSMax: 82 << 20, RSSAfter: 81 << 20}
	agent := attack.ProcUsage{CPU: 0.12, RSSBefore: 20 << 20, RSSMax: 21 << 20, RSSAfter: 20 << 20}
	for _, tc := range []struct {
		name string
		res  attack.FloodTrialResult
		want []string
	}{
		{
			name: "syn",
			res: attack.FloodTrialResult{
				Flood:   attack.FloodResult{Kind: attack.FloodSYN, Seconds: 10, Sent: 840451, SendErrors: 3069, Rate: 84045.1, SenderCPU: 0.42},
				Load:    load.Result{Requests: 3447, Errors: map[string]uint64{load.ErrTimeout: 2}, Seconds: 8},
				Success: 3447.0 / 3449, SYNAcks: 803178, SYNAckRate: 80317.8, RingDrops: 41835,
				Flows: 4302, ActiveFlowsBefore: 1, ActiveFlowsAfter: 4072,
				Switch: usage, Agents: []attack.ProcUsage{agent, agent}, MachineCPU: 1.97, NumCPU: 2,
			},
			want: []string{
				"SYN flood from 198.18.0.200",
				"84045 SYNs/s offered (840451 sent, 3069 send errors",
				"80318 SYN-ACKs/s (803178), ring drops 41835",
				"4302 connections accepted, active flows 1 -> 4072",
				"switch drops: none",
				"webswitch: CPU 0.93 cores; RSS 80.0 MiB before, 82.0 MiB at most during the flood, 81.0 MiB after",
				"agent of be2: CPU 0.12 cores; RSS 20.0 MiB before, 21.0 MiB at most during the flood, 20.0 MiB after",
				"whole machine: CPU 1.97 cores of 2",
				"99.94 % of its requests succeeded",
				"errors: timeout 2",
			},
		},
		{
			name: "ack",
			res: attack.FloodTrialResult{
				Flood:   attack.FloodResult{Kind: attack.FloodACK, Seconds: 5, Sent: 500000, Rate: 100000},
				Load:    load.Result{Requests: 2000, Seconds: 3},
				Success: 1, RecoveryAsked: 250000, RecoveryAskedRate: 50000, RecoveryQueries: 7814, RecoveryQueryRate: 1562.8,
				RecoveryUnanswered: 3, Resets: 120000,
				Drops:  map[string]uint64{"recovery_rate": 250000, "no_owner": 130000},
				Switch: usage, Agents: []attack.ProcUsage{agent, agent}, MachineCPU: 1.97, NumCPU: 2,
			},
			want: []string{
				"ACK flood from 198.18.0.200",
				"100000 ACKs/s offered (500000 sent, 0 send errors",
				"asked the agents about 250000 connections (50000/s) in 7814 LOOKUPs (1563/s), 3 unanswered; 120000 RSTs",
				"switch drops: no_owner 130000, recovery_rate 250000",
				"agent of be1: CPU 0.12 cores",
				"100.00 % of its requests succeeded",
				"errors: none",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printFlood(&b, &tc.res)
			for _, want := range tc.want {
				if !strings.Contains(b.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, b.String())
				}
			}
		})
	}
}
