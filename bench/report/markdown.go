package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// column is one column of a Markdown table.
type column struct {
	name  string
	right bool // numbers are right-aligned
}

// resultColumns are the columns of the main table, one cell each in
// resultCells.
var resultColumns = []column{
	{"Size", true}, {"Conn", false}, {"Set-up", false},
	{"req/s", true}, {"MB/s", true}, {"vs direct", true},
	{"p50 ms", true}, {"p99 ms", true}, {"p99.9 ms", true},
	{"errors", true}, {"CPU s/1k req", true}, {"back-end CPU", true}, {"machine busy", true}, {"ring drops", true},
	{"retrans", true}, {"wrk req/s", true},
}

// resultsLegend explains the main table's columns, below it.
const resultsLegend = `req/s, MB/s: completed requests (2xx status, whole body) and their body
bytes per second. vs direct: req/s relative to direct at the same size and
connection mode. p50, p99, p99.9: response time. errors: failed requests,
all kinds. CPU s/1k req: user+system CPU seconds of the switch or proxy per
1,000 requests. back-end CPU: the same for the back-ends' server processes.
machine busy: share of all the machine's CPUs in use
during the row (client, switch or proxy, back-ends). ring drops: frames the switch's packet rings lost.
retrans: TCP segments the client retransmitted. wrk req/s: the same row
measured by wrk (its errors in brackets).
`

// modeKey identifies the direct row a row is compared with.
type modeKey struct {
	size      int64
	keepAlive bool
}

// WriteMarkdown writes r as a Markdown document for a reader comparing the
// set-ups: header, results table, targets, notes and links to the charts
// that WriteCharts writes.
func WriteMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	b.WriteString("# Bench report\n\n")
	fmt.Fprintf(&b, "- Date: %s\n- Machine: %s\n\nCommand:\n\n", inline(r.Date), inline(r.Machine))
	writeCodeBlock(&b, r.Command)

	b.WriteString("\n## Results\n\n")
	rows := sortedRows(r.Rows)
	if len(rows) == 0 {
		b.WriteString("No results.\n")
	} else {
		direct := make(map[modeKey]float64)
		for _, row := range rows {
			k := modeKey{row.Size, row.KeepAlive}
			if _, seen := direct[k]; !seen && row.Setup == SetupDirect {
				direct[k] = row.Load.RPS
			}
		}
		cells := make([][]string, len(rows))
		for i, row := range rows {
			base, ok := direct[modeKey{row.Size, row.KeepAlive}]
			cells[i] = resultCells(row, base, ok)
		}
		writeTable(&b, resultColumns, cells)
		b.WriteString("\n" + resultsLegend)
	}

	if len(r.Targets) > 0 {
		b.WriteString("\n## Targets\n\n")
		cells := make([][]string, len(r.Targets))
		for i, t := range r.Targets {
			met := "**no**"
			if t.Met {
				met = "yes"
			}
			cells[i] = []string{t.Name, t.Got, met}
		}
		writeTable(&b, []column{{"Name", false}, {"Got", true}, {"Met", false}}, cells)
	}

	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			b.WriteString("- " + inline(n) + "\n")
		}
	}

	if charts := buildCharts(r); len(charts) > 0 {
		b.WriteString("\n## Charts\n\n")
		for _, c := range charts {
			fmt.Fprintf(&b, "![%s](%s)\n\n", c.alt, c.file)
		}
	}
	_, err := io.WriteString(w, strings.TrimRight(b.String(), "\n")+"\n")
	return err
}

// resultCells are the main table's cells for row; base is the req/s of
// the direct row of the same size and mode, when hasBase.
func resultCells(row Row, base float64, hasBase bool) []string {
	conn := "new conn"
	if row.KeepAlive {
		conn = "keep-alive"
	}
	ratio := ""
	if hasBase {
		ratio = formatRatio(row.Load.RPS, base)
	}
	var errs uint64
	for _, n := range row.Load.Errors {
		errs += n
	}
	cpu := ""
	if row.CPUPer1k >= 0 {
		cpu = formatNum(row.CPUPer1k)
	}
	backendCPU := ""
	if row.BackendCPUPer1k > 0 {
		backendCPU = formatNum(row.BackendCPUPer1k)
	}
	drops := ""
	if row.Setup == SetupWebswitch {
		drops = strconv.FormatUint(row.RingDrops, 10)
	}
	wrk := ""
	if row.Wrk != nil {
		wrk = formatNum(row.Wrk.RPS)
		if row.Wrk.Errors > 0 {
			wrk += fmt.Sprintf(" (%d errors)", row.Wrk.Errors)
		}
	}
	lat := row.Load.Latency
	return []string{
		formatSize(row.Size), conn, row.Setup,
		formatNum(row.Load.RPS), formatNum(row.Load.MBps), ratio,
		formatMs(lat.P50), formatMs(lat.P99), formatMs(lat.P999),
		strconv.FormatUint(errs, 10), cpu, backendCPU, formatPercent(row.MachineBusy), drops,
		strconv.FormatUint(row.Retrans, 10), wrk,
	}
}

// writeTable writes a Markdown table; every row has one cell per column.
func writeTable(b *strings.Builder, cols []column, rows [][]string) {
	head := make([]string, len(cols))
	rule := make([]string, len(cols))
	for i, c := range cols {
		head[i] = c.name
		rule[i] = "---"
		if c.right {
			rule[i] = "---:"
		}
	}
	writeTableRow(b, head)
	writeTableRow(b, rule)
	for _, r := range rows {
		writeTableRow(b, r)
	}
}

// writeTableRow writes one table line, escaping the cells.
func writeTableRow(b *strings.Builder, cells []string) {
	b.WriteString("|")
	for _, c := range cells {
		b.WriteString(" " + strings.ReplaceAll(inline(c), "|", `\|`) + " |")
	}
	b.WriteString("\n")
}

// writeCodeBlock writes s as a fenced code block, the fence longer than
// any run of backticks in s.
func writeCodeBlock(b *strings.Builder, s string) {
	fence := "```"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	b.WriteString(fence + "\n" + strings.TrimRight(s, "\n") + "\n" + fence + "\n")
}

// inline makes s fit on one Markdown line.
func inline(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
