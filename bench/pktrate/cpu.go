package pktrate

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the times in /proc (USER_HZ, 100 on every Linux
// architecture's user ABI).
const userHZ = 100

// errProcFormat reports /proc text that is not as documented in proc(5).
var errProcFormat = errors.New("pktrate: unexpected /proc format")

// procCPU returns the CPU time (user and system) process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat returns utime+stime from the text of /proc/PID/stat. The
// command name (field 2) is in parentheses and may hold spaces and ")", so
// fields are counted from after its last ")": utime and stime are fields 14
// and 15.
func parseProcStat(text string) (time.Duration, error) {
	i := strings.LastIndexByte(text, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: /proc/PID/stat has no command name", errProcFormat)
	}
	f := strings.Fields(text[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: /proc/PID/stat has %d fields", errProcFormat, len(f)+2)
	}
	return ticks(f[11:13])
}

// machineCPU returns the busy time of all CPUs together (user, nice,
// system, irq, softirq, steal) from /proc/stat, and the number of CPUs.
func machineCPU() (time.Duration, int, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(string(b))
}

// parseStat parses the text of /proc/stat for machineCPU: the aggregate
// "cpu" line is user nice system idle iowait irq softirq steal ..., and
// every CPU has a "cpuN" line.
func parseStat(text string) (busy time.Duration, cpus int, err error) {
	total := false
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || !strings.HasPrefix(f[0], "cpu"):
		case f[0] != "cpu":
			cpus++
		case len(f) < 9:
			return 0, 0, fmt.Errorf("%w: /proc/stat cpu line %q", errProcFormat, strings.TrimSpace(line))
		default:
			total = true
			if busy, err = ticks([]string{f[1], f[2], f[3], f[6], f[7], f[8]}); err != nil {
				return 0, 0, err
			}
		}
	}
	if !total || cpus == 0 {
		return 0, 0, fmt.Errorf("%w: /proc/stat lacks the cpu or cpuN lines", errProcFormat)
	}
	return busy, cpus, nil
}

// ticks returns the sum of times given in USER_HZ ticks.
func ticks(fields []string) (time.Duration, error) {
	var sum uint64
	for _, s := range fields {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errProcFormat, err)
		}
		sum += n
	}
	return time.Duration(sum) * time.Second / userHZ, nil
}
