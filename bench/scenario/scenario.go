// Package scenario is the bench harness behind `wsbench run`: the same
// back-ends and files served four ways on one test network (direct to the
// back-ends, through webswitch, through HAProxy, through nginx), measured
// with the same load generator from the same client namespace, in one run.
package scenario

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"webswitch/bench/procstat"
	"webswitch/bench/report"
	"webswitch/bench/site"
	"webswitch/bench/testbed"
)

// backends is the number of back-ends of the site.
const backends = 2

// Sizes of the bench issue.
const (
	KiB = 1 << 10
	MiB = 1 << 20
)

// Config is one bench run.
type Config struct {
	BinDir      string        // webswitch, handoffd and wsbench binaries
	Sizes       []int64       // response sizes, measured with keep-alive
	CloseSizes  []int64       // sizes also measured with a new connection per request
	Setups      []string      // report.Setup* names, in the order to run them
	Duration    time.Duration // measured time per row
	Warmup      time.Duration // per row, before measuring
	Connections int           // concurrent client connections
	Wrk         bool          // cross-check webswitch and HAProxy keep-alive rows with wrk
	Shards      int           // webswitch shards
	Command     string        // the command line, for the report
	Log         io.Writer     // progress, one line per row; nil: none
	Interrupt   bool          // SIGINT or SIGTERM tears the test network down and exits (for commands)
	CPUProfile  string        // when set, the switch writes its CPU profile of the whole run here
	RingVersion int           // the switch's ring_version; 0: its default
}

// DefaultSetups are all four set-ups.
var DefaultSetups = []string{report.SetupDirect, report.SetupWebswitch, report.SetupHAProxy, report.SetupNginx}

// Run brings up the site and the proxies, measures every row and returns
// the report (targets included). Everything it started is stopped.
func Run(cfg Config) (_ *report.Report, err error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	dir, err := os.MkdirTemp("", "wsbench-run")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	www := filepath.Join(dir, "www")
	for _, n := range append(cfg.Sizes, cfg.CloseSizes...) {
		if err := writeRandomFile(filepath.Join(www, fileName(n)), n); err != nil {
			return nil, err
		}
	}
	s, err := site.Start(site.Config{
		BinDir: cfg.BinDir, Dir: dir, Static1: www, Static2: www,
		Balanced: true, DirectPort: DirectPort, Offloads: true, Shards: cfg.Shards,
		SwitchArgs: profileArgs(cfg.CPUProfile), SwitchKeys: ringKeys(cfg.RingVersion),
	})
	if err != nil {
		return nil, err
	}
	if cfg.Interrupt {
		s.TB.HandleSignals()
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, s.Logs())
		}
		s.Down()
	}()
	b := &bench{cfg: cfg, site: s, dir: dir}
	if err := b.startProxies(); err != nil {
		return nil, err
	}
	rep := &report.Report{Command: cfg.Command, Machine: machine(), Date: time.Now().UTC().Format(time.RFC3339)}
	for _, keepAlive := range []bool{true, false} {
		sizes := cfg.Sizes
		if !keepAlive {
			sizes = cfg.CloseSizes
		}
		for _, size := range sizes {
			for _, setup := range cfg.Setups {
				row, err := b.row(setup, size, keepAlive)
				if err != nil {
					return nil, fmt.Errorf("%s %s keep-alive=%v: %w", setup, fileName(size), keepAlive, err)
				}
				fmt.Fprintf(cfg.Log, "%-9s %5s %-10s %9.0f req/s %8.1f MB/s  p99 %7.2f ms  errors %d  cpu/1k %.3f s\n",
					setup, fileName(size), connMode(keepAlive), row.Load.RPS, row.Load.MBps, row.Load.Latency.P99,
					errorCount(row.Load.Errors), row.CPUPer1k)
				rep.Rows = append(rep.Rows, row)
			}
		}
	}
	rep.Targets = Targets(rep.Rows)
	return rep, nil
}

type bench struct {
	cfg     Config
	site    *site.Site
	dir     string
	haproxy *testbed.Proc
	nginx   *testbed.Proc
}

func (b *bench) startProxies() error {
	if err := writeProxyConfigs(b.dir); err != nil {
		return err
	}
	tb := b.site.TB
	var err error
	if b.has(report.SetupHAProxy) {
		if b.haproxy, err = tb.Start("sw", filepath.Join(b.dir, "haproxy.log"), "haproxy", "-db", "-f", filepath.Join(b.dir, "haproxy.cfg")); err != nil {
			return fmt.Errorf("haproxy: %w", err)
		}
	}
	if b.has(report.SetupNginx) {
		if b.nginx, err = tb.Start("sw", filepath.Join(b.dir, "nginx.log"), "nginx", "-e", filepath.Join(b.dir, "nginx-error.log"), "-c", filepath.Join(b.dir, "nginx.conf")); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
	}
	for _, setup := range b.cfg.Setups {
		if err := b.waitReady(setup); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) has(setup string) bool {
	for _, s := range b.cfg.Setups {
		if s == setup {
			return true
		}
	}
	return false
}

// urls returns the URLs of a set-up for a file: direct clients spread their
// connections over both back-ends.
func urls(setup, file string) []string {
	switch setup {
	case report.SetupDirect:
		var u []string
		for i := 1; i <= backends; i++ {
			u = append(u, fmt.Sprintf("http://%s:%d/%s", testbed.BackendIP(i), DirectPort, file))
		}
		return u
	case report.SetupHAProxy:
		return []string{fmt.Sprintf("http://%s:%d/%s", testbed.SwitchIP, haproxyPort, file)}
	case report.SetupNginx:
		return []string{fmt.Sprintf("http://%s:%d/%s", testbed.SwitchIP, nginxPort, file)}
	default:
		return []string{site.VIPURL + "/" + file}
	}
}

// waitReady waits until every URL of a set-up answers 200.
func (b *bench) waitReady(setup string) error {
	deadline := time.Now().Add(15 * time.Second)
	for _, u := range urls(setup, "") {
		for {
			out, err := b.site.TB.Run("cli", "curl", "-sS", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", u)
			if err == nil && out == "200" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready: GET %s: %s %v", setup, u, out, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// pid returns the process whose CPU a set-up costs (0 for direct).
func (b *bench) pid(setup string) int {
	switch setup {
	case report.SetupWebswitch:
		return b.site.Switch.Cmd.Process.Pid
	case report.SetupHAProxy:
		return b.haproxy.Cmd.Process.Pid
	case report.SetupNginx:
		return b.nginx.Cmd.Process.Pid
	}
	return 0
}

// counters are the figures read before and after a row.
type counters struct {
	at        time.Time
	busy      time.Duration // all CPUs together
	cpus      int
	cpu       float64 // the switch or proxy
	backend   float64 // the agents
	retrans   uint64
	ringDrops uint64
}

func (b *bench) read(setup string) (c counters, err error) {
	c.at = time.Now()
	if c.busy, c.cpus, err = procstat.Machine(); err != nil {
		return c, err
	}
	if pid := b.pid(setup); pid != 0 {
		cpu, err := procstat.Tree(pid)
		if err != nil {
			return c, err
		}
		c.cpu = cpu.Seconds()
	}
	for _, a := range b.site.Agents {
		cpu, err := procstat.Tree(a.Cmd.Process.Pid)
		if err != nil {
			return c, err
		}
		c.backend += cpu.Seconds()
	}
	snmp, err := b.site.TB.SNMP("cli")
	if err != nil {
		return c, err
	}
	c.retrans = snmp["Tcp.RetransSegs"]
	if setup == report.SetupWebswitch {
		shards, err := b.site.ShardCounters()
		if err != nil {
			return c, err
		}
		for _, sh := range shards {
			v, _ := sh["ring_drops"].(float64)
			c.ringDrops += uint64(v)
		}
	}
	return c, nil
}

// row measures one set-up serving one size.
func (b *bench) row(setup string, size int64, keepAlive bool) (report.Row, error) {
	row := report.Row{Setup: setup, Size: size, KeepAlive: keepAlive, CPUPer1k: -1}
	before, err := b.read(setup)
	if err != nil {
		return row, err
	}
	args := []string{"load", "-json",
		"-c", strconv.Itoa(b.cfg.Connections), "-d", b.cfg.Duration.String(), "-warmup", b.cfg.Warmup.String(),
		"-keepalive=" + strconv.FormatBool(keepAlive)}
	for _, u := range urls(setup, fileName(size)) {
		args = append(args, "-url", u)
	}
	var stderr bytes.Buffer
	cmd := b.site.TB.Command("cli", filepath.Join(b.cfg.BinDir, "wsbench"), args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return row, fmt.Errorf("wsbench load: %v: %s", err, stderr.Bytes())
	}
	if err := json.Unmarshal(out, &row.Load); err != nil {
		return row, fmt.Errorf("wsbench load output: %v", err)
	}
	after, err := b.read(setup)
	if err != nil {
		return row, err
	}
	row.Retrans = after.retrans - before.retrans
	// Over the whole row, warm-up included: the load is the same throughout.
	row.MachineBusy = (after.busy - before.busy).Seconds() / after.at.Sub(before.at).Seconds() / float64(after.cpus)
	row.RingDrops = after.ringDrops - before.ringDrops
	if row.Load.Requests > 0 {
		per1k := 1000 / float64(row.Load.Requests)
		if b.pid(setup) != 0 {
			row.CPUPer1k = (after.cpu - before.cpu) * per1k
		}
		row.BackendCPUPer1k = (after.backend - before.backend) * per1k
	}
	if b.cfg.Wrk && keepAlive && (setup == report.SetupWebswitch || setup == report.SetupHAProxy) {
		if row.Wrk, err = b.wrk(urls(setup, fileName(size))[0]); err != nil {
			return row, err
		}
	}
	return row, nil
}

// wrk runs wrk, two threads (one per core), against url with the run's connections and
// duration.
func (b *bench) wrk(url string) (*report.Wrk, error) {
	out, err := b.site.TB.Run("cli", "wrk", "-t", "2", "-c", strconv.Itoa(b.cfg.Connections),
		"-d", strconv.Itoa(max(1, int(b.cfg.Duration.Seconds())))+"s", url)
	if err != nil {
		return nil, fmt.Errorf("wrk: %v: %s", err, out)
	}
	return parseWrk(out)
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTransfer = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads wrk's summary.
func parseWrk(out string) (*report.Wrk, error) {
	m := wrkRPS.FindStringSubmatch(out)
	t := wrkTransfer.FindStringSubmatch(out)
	if m == nil || t == nil {
		return nil, errors.New("wrk: no Requests/sec or Transfer/sec in its output")
	}
	w := &report.Wrk{}
	w.RPS, _ = strconv.ParseFloat(m[1], 64)
	mb, _ := strconv.ParseFloat(t[1], 64)
	unit := map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[t[2]]
	w.MBps = mb * unit / 1e6
	if s := wrkSocket.FindStringSubmatch(out); s != nil {
		for _, v := range s[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			w.Errors += n
		}
	}
	if s := wrkNon2xx.FindStringSubmatch(out); s != nil {
		n, _ := strconv.ParseUint(s[1], 10, 64)
		w.Errors += n
	}
	return w, nil
}

// fileName names the file of a response size: "1k.bin", "10m.bin".
func fileName(n int64) string {
	switch {
	case n >= MiB && n%MiB == 0:
		return strconv.FormatInt(n/MiB, 10) + "m.bin"
	case n >= KiB && n%KiB == 0:
		return strconv.FormatInt(n/KiB, 10) + "k.bin"
	}
	return strconv.FormatInt(n, 10) + ".bin"
}

// ParseSize reads "1k", "100K", "1m", "10M" or a byte count.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "k":
		mult, s = KiB, s[:len(s)-1]
	case "m":
		mult, s = MiB, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional k or m", s)
	}
	return n * mult, nil
}

func profileArgs(path string) []string {
	if path == "" {
		return nil
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return []string{"-cpuprofile", path}
}

func ringKeys(version int) string {
	if version == 0 {
		return ""
	}
	return fmt.Sprintf("ring_version = %d", version)
}

func connMode(keepAlive bool) string {
	if keepAlive {
		return "keep-alive"
	}
	return "new-conn"
}

func errorCount(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

func writeRandomFile(path string, n int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// machine describes the host: CPU model, cores, kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%s, %d cores, Linux %s", model, runtime.NumCPU(), strings.TrimSpace(string(kernel)))
}
