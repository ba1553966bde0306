package procstat

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		ppid       int
		want       time.Duration
		err        error
	}{
		{"plain", "4242 (webswitch) S 1 4242 4242 0 -1 4194560 800 0 0 0 150 25 0 0 20 0 6 0 100 0 0\n",
			1, 1750 * time.Millisecond, nil},
		{"name with spaces and parenthesis", "7 (a) b (c)) R 5 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0 0\n",
			5, 70 * time.Millisecond, nil},
		{"no name", "7 R 1", 0, 0, ErrFormat},
		{"short", "7 (x) R 1 2 3", 0, 0, ErrFormat},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 4 0\n", 0, 0, ErrFormat},
		{"bad ppid", "7 (x) R y 7 7 0 -1 0 0 0 0 0 3 4 0\n", 0, 0, ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ppid, got, err := parseProcStat(tc.text)
			if !errors.Is(err, tc.err) || got != tc.want || ppid != tc.ppid {
				t.Errorf("parseProcStat = %d, %v, %v; want %d, %v, %v", ppid, got, err, tc.ppid, tc.want, tc.err)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	const text = `cpu  100 5 50 9000 7 3 2 1 0 0
cpu0 50 5 25 4500 3 2 1 1 0 0
cpu1 50 0 25 4500 4 1 1 0 0 0
intr 12345 0 0
ctxt 999
`
	busy, cpus, err := parseStat(text)
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal = 100+5+50+3+2+1 ticks.
	if busy != 1610*time.Millisecond || cpus != 2 {
		t.Errorf("parseStat = %v, %d CPUs; want 1.61s, 2", busy, cpus)
	}
	for _, bad := range []string{"cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\ncpu0 1 2 3 4 5 6 7 8\n", "intr 1\n"} {
		if _, _, err := parseStat(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("parseStat(%q) error = %v, want ErrFormat", bad, err)
		}
	}
}

func TestParseRSS(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       int64
		err        error
	}{
		{"status", "Name:\twebswitch\nVmPeak:\t 1250000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t 8000 kB\n", 10 << 20, nil},
		{"zero", "VmRSS:\t0 kB\n", 0, nil},
		{"no VmRSS (kernel thread)", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, ErrFormat},
		{"no unit", "VmRSS:\t10240\n", 0, ErrFormat},
		{"other unit", "VmRSS:\t10 MB\n", 0, ErrFormat},
		{"not a number", "VmRSS:\tx kB\n", 0, ErrFormat},
		{"negative", "VmRSS:\t-1 kB\n", 0, ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRSS(tc.text)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("parseRSS = %d, %v; want %d, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestThisProcess(t *testing.T) {
	self, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := Tree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self < 0 || tree < self {
		t.Errorf("Process = %v, Tree = %v: the tree holds the process", self, tree)
	}
	if _, err := Tree(1 << 30); err == nil {
		t.Error("Tree of a pid that does not exist succeeded")
	}
	// The test binary's heap and stacks alone are more than 1 MiB.
	if rss, err := RSS(os.Getpid()); err != nil || rss < 1<<20 {
		t.Errorf("RSS = %d, %v; want more than 1 MiB", rss, err)
	}
	if _, err := RSS(1 << 30); err == nil {
		t.Error("RSS of a pid that does not exist succeeded")
	}
	if _, cpus, err := Machine(); err != nil || cpus < 1 {
		t.Errorf("Machine: %d CPUs, %v", cpus, err)
	}
}
