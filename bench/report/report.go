// Package report turns bench results into a Markdown table, a JSON file
// and PNG charts.
package report

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"

	"webswitch/bench/load"
)

// Report is one bench run.
type Report struct {
	Command string   `json:"command"` // the exact command line
	Machine string   `json:"machine"` // CPU model, cores, kernel
	Date    string   `json:"date"`    // RFC 3339
	Rows    []Row    `json:"rows"`
	Targets []Target `json:"targets,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// Row is one set-up serving one response size.
type Row struct {
	Setup     string      `json:"setup"` // SetupDirect, SetupWebswitch, SetupHAProxy or SetupNginx
	Size      int64       `json:"size"`  // response body bytes
	KeepAlive bool        `json:"keep_alive"`
	Load      load.Result `json:"load"`
	// CPUPer1k is the CPU seconds (user+system, from /proc) of the switch or
	// proxy process per 1,000 completed requests; -1 for direct (none).
	CPUPer1k float64 `json:"cpu_s_per_1k"`
	// BackendCPUPer1k is the same for the back-ends' server processes
	// (handoffd, which serves the direct listener too), all set-ups.
	BackendCPUPer1k float64 `json:"backend_cpu_s_per_1k"`
	// MachineBusy is the share of all CPUs busy during the row (from
	// /proc/stat), 0..1: when it is near 1 the set-ups compete for CPU.
	MachineBusy float64 `json:"machine_busy"`
	RingDrops   uint64  `json:"ring_drops"`     // kernel packet-ring drops (webswitch only)
	Retrans     uint64  `json:"client_retrans"` // client TcpRetransSegs during the row
	Wrk         *Wrk    `json:"wrk,omitempty"`  // the cross-check with wrk, when run
}

// Wrk is wrk's view of the same set-up and size.
type Wrk struct {
	RPS    float64 `json:"rps"`
	MBps   float64 `json:"mbps"`
	Errors uint64  `json:"errors"` // socket errors and non-2xx responses
}

// The set-ups, in the order tables and charts show them.
const (
	SetupDirect    = "direct"
	SetupWebswitch = "webswitch"
	SetupHAProxy   = "haproxy"
	SetupNginx     = "nginx"
)

// setupOrder is the display order of the known set-ups; others follow,
// sorted by name.
var setupOrder = []string{SetupDirect, SetupWebswitch, SetupHAProxy, SetupNginx}

// compareSetups orders set-up names for display.
func compareSetups(a, b string) int {
	ra, rb := setupRank(a), setupRank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	return cmp.Compare(a, b)
}

// setupRank is the position of a known set-up, len(setupOrder) for others.
func setupRank(name string) int {
	if i := slices.Index(setupOrder, name); i >= 0 {
		return i
	}
	return len(setupOrder)
}

// sortedRows returns a copy of rows in display order: size ascending,
// keep-alive before new connections, then set-up order. Rows that tie keep
// their order.
func sortedRows(rows []Row) []Row {
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b Row) int {
		if c := cmp.Compare(a.Size, b.Size); c != 0 {
			return c
		}
		if a.KeepAlive != b.KeepAlive {
			if a.KeepAlive {
				return -1
			}
			return 1
		}
		return compareSetups(a.Setup, b.Setup)
	})
	return out
}

// Names of the files Write creates in its directory.
const (
	MarkdownFile   = "report.md"
	JSONFile       = "report.json"
	ThroughputFile = "throughput.png"
	CPUFile        = "cpu.png"
	LatencyFile    = "latency.png"
)

// Write creates dir if needed and writes the report into it: MarkdownFile,
// JSONFile and the charts (see WriteCharts).
func Write(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, MarkdownFile), r, WriteMarkdown); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, JSONFile), r, WriteJSON); err != nil {
		return err
	}
	return WriteCharts(dir, r)
}

// writeFile creates path and writes r into it with write.
func writeFile(path string, r *Report, write func(io.Writer, *Report) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(write(f, r), f.Close())
}

// WriteJSON writes r as indented JSON. Non-finite numbers (NaN, ±Inf) in r
// cannot be encoded and make it fail.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a report written by WriteJSON, e.g. to render a saved run
// again.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Target is one goal of the bench issue and whether the run met it.
type Target struct {
	Name string `json:"name"` // e.g. "1 MiB keep-alive: webswitch >= 0.9x direct"
	Got  string `json:"got"`  // the measured figure, e.g. "0.97x"
	Met  bool   `json:"met"`
}
