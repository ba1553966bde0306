// Package procstat reads CPU time from /proc: of a process, of a process
// and its descendants, and of the whole machine; and a process's resident
// memory. The bench uses it to charge CPU to the switch or a proxy and to
// see how busy the machine was, the end-to-end tests to see that the
// switch's memory stays flat.
package procstat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the times in /proc (USER_HZ, 100 on every Linux
// architecture's user ABI).
const userHZ = 100

// ErrFormat reports /proc text that is not as documented in proc(5).
var ErrFormat = errors.New("procstat: unexpected /proc format")

// Process returns the CPU time (user and system) process pid has used.
func Process(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	_, cpu, err := parseProcStat(string(b))
	return cpu, err
}

// Tree returns the CPU time of process root and of all its live
// descendants (nginx's worker is a child of its master).
func Tree(root int) (time.Duration, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	parent := map[int]int{}
	cpu := map[int]time.Duration{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		if parent[pid], cpu[pid], err = parseProcStat(string(b)); err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	if _, ok := cpu[root]; !ok {
		return 0, fmt.Errorf("procstat: process %d not found", root)
	}
	var sum time.Duration
	for pid, c := range cpu {
		for p := pid; p > 0; p = parent[p] {
			if p == root {
				sum += c
				break
			}
		}
	}
	return sum, nil
}

// parseProcStat returns the parent pid and utime+stime from the text of
// /proc/PID/stat. The command name (field 2) is in parentheses and may hold
// spaces and ")", so fields are counted from after its last ")": ppid is
// field 4, utime and stime fields 14 and 15.
func parseProcStat(text string) (ppid int, cpu time.Duration, err error) {
	i := strings.LastIndexByte(text, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("%w: /proc/PID/stat has no command name", ErrFormat)
	}
	f := strings.Fields(text[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%w: /proc/PID/stat has %d fields", ErrFormat, len(f)+2)
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, fmt.Errorf("%w: ppid %q", ErrFormat, f[1])
	}
	if cpu, err = ticks(f[11:13]); err != nil {
		return 0, 0, err
	}
	return ppid, cpu, nil
}

// RSS returns the resident set size of process pid in bytes (VmRSS in
// /proc/PID/status).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseRSS(string(b))
}

// parseRSS returns the VmRSS field of the text of /proc/PID/status, a line
// "VmRSS:" followed by a number of kB, in bytes.
func parseRSS(text string) (int64, error) {
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%w: /proc/PID/status line %q", ErrFormat, strings.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("%w: VmRSS %q", ErrFormat, f[0])
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%w: /proc/PID/status has no VmRSS (a kernel thread or a zombie?)", ErrFormat)
}

// Machine returns the busy time of all CPUs together (user, nice, system,
// irq, softirq, steal) from /proc/stat, and the number of CPUs.
func Machine() (time.Duration, int, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(string(b))
}

// parseStat parses the text of /proc/stat: the aggregate "cpu" line is user
// nice system idle iowait irq softirq steal ..., and every CPU has a "cpuN"
// line.
func parseStat(text string) (busy time.Duration, cpus int, err error) {
	total := false
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || !strings.HasPrefix(f[0], "cpu"):
		case f[0] != "cpu":
			cpus++
		case len(f) < 9:
			return 0, 0, fmt.Errorf("%w: /proc/stat cpu line %q", ErrFormat, strings.TrimSpace(line))
		default:
			total = true
			if busy, err = ticks([]string{f[1], f[2], f[3], f[6], f[7], f[8]}); err != nil {
				return 0, 0, err
			}
		}
	}
	if !total || cpus == 0 {
		return 0, 0, fmt.Errorf("%w: /proc/stat lacks the cpu or cpuN lines", ErrFormat)
	}
	return busy, cpus, nil
}

// ticks returns the sum of times given in USER_HZ ticks.
func ticks(fields []string) (time.Duration, error) {
	var sum uint64
	for _, s := range fields {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		sum += n
	}
	return time.Duration(sum) * time.Second / userHZ, nil
}
