package report

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/report.golden.md")

func TestMarkdownGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, fixture()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.golden.md")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("WriteMarkdown differs from %s (-want +got; go test -update rewrites it):\n%s", golden, diff)
	}
}

// resultTable renders r and returns the main table's data rows as cells
// keyed by column name.
func resultTable(t *testing.T, r *Report) []map[string]string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, r); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, bad := range []string{"NaN", "Inf"} {
		if strings.Contains(md, bad) {
			t.Errorf("Markdown contains %q:\n%s", bad, md)
		}
	}
	_, results, _ := strings.Cut(md, "## Results\n\n")
	lines := strings.Split(results, "\n")
	var out []map[string]string
	for _, line := range lines[2:] { // after the head and the rule
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(line[len("| "):len(line)-len(" |")], " | ")
		if len(cells) != len(resultColumns) {
			t.Fatalf("table line %q has %d cells, want %d", line, len(cells), len(resultColumns))
		}
		m := make(map[string]string)
		for i, c := range resultColumns {
			m[c.name] = cells[i]
		}
		out = append(out, m)
	}
	return out
}

func TestVsDirect(t *testing.T) {
	tests := []struct {
		name   string
		rows   []Row
		want   []string // "vs direct" per row in display order
		setups []string // "Set-up" per row in display order
	}{
		{
			name: "ratio",
			rows: []Row{
				benchRow(SetupHAProxy, kib1, true, 500, ms(1, 2, 3), 0.1),
				benchRow(SetupDirect, kib1, true, 1000, ms(1, 2, 3), -1),
			},
			want:   []string{"1.00x", "0.50x"},
			setups: []string{SetupDirect, SetupHAProxy},
		},
		{
			name: "no direct row",
			rows: []Row{
				benchRow(SetupWebswitch, kib1, true, 500, ms(1, 2, 3), 0.1),
				benchRow(SetupDirect, kib1, false, 1000, ms(1, 2, 3), -1),
				benchRow(SetupWebswitch, mib1, true, 50, ms(1, 2, 3), 0.1),
			},
			want:   []string{"", "1.00x", ""},
			setups: []string{SetupWebswitch, SetupDirect, SetupWebswitch},
		},
		{
			name: "zero direct req/s",
			rows: []Row{
				benchRow(SetupDirect, kib1, true, 0, ms(0, 0, 0), -1),
				benchRow(SetupNginx, kib1, true, 700, ms(1, 2, 3), 0.1),
			},
			want:   []string{"", ""},
			setups: []string{SetupDirect, SetupNginx},
		},
		{
			name: "not finite",
			rows: []Row{
				benchRow(SetupDirect, kib1, true, math.NaN(), ms(math.NaN(), math.Inf(1), math.NaN()), math.NaN()),
				benchRow(SetupNginx, kib1, true, math.Inf(1), ms(1, 2, 3), math.Inf(1)),
				benchRow(SetupDirect, mib1, true, 10, ms(1, 2, 3), -1),
				benchRow(SetupNginx, mib1, true, math.Inf(1), ms(1, 2, 3), 0.1),
			},
			want:   []string{"", "", "1.00x", ""},
			setups: []string{SetupDirect, SetupNginx, SetupDirect, SetupNginx},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got, setups []string
			for _, row := range resultTable(t, &Report{Rows: tt.rows}) {
				got = append(got, row["vs direct"])
				setups = append(setups, row["Set-up"])
			}
			if diff := cmp.Diff(tt.setups, setups); diff != "" {
				t.Errorf("set-ups (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("vs direct (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRowOrder(t *testing.T) {
	rows := []Row{
		{Setup: "envoy", Size: kib1, KeepAlive: true},
		{Setup: SetupNginx, Size: mib1, KeepAlive: true},
		{Setup: SetupDirect, Size: kib1, KeepAlive: false},
		{Setup: SetupNginx, Size: kib1, KeepAlive: true},
		{Setup: "caddy", Size: kib1, KeepAlive: true},
		{Setup: SetupWebswitch, Size: kib1, KeepAlive: false},
		{Setup: SetupHAProxy, Size: kib1, KeepAlive: true},
		{Setup: SetupDirect, Size: kib1, KeepAlive: true},
		{Setup: SetupWebswitch, Size: kib1, KeepAlive: true},
	}
	var got []string
	for _, r := range sortedRows(rows) {
		got = append(got, formatSize(r.Size)+" "+map[bool]string{true: "ka", false: "new"}[r.KeepAlive]+" "+r.Setup)
	}
	want := []string{
		"1 KiB ka direct", "1 KiB ka webswitch", "1 KiB ka haproxy", "1 KiB ka nginx",
		"1 KiB ka caddy", "1 KiB ka envoy",
		"1 KiB new direct", "1 KiB new webswitch",
		"1 MiB ka nginx",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sortedRows order (-want +got):\n%s", diff)
	}
	if rows[0].Setup != "envoy" {
		t.Errorf("sortedRows reordered its argument")
	}
}

func TestMarkdownCells(t *testing.T) {
	r := &Report{
		Command: "wsbench bench -note '```'",
		Rows: []Row{
			benchRow(SetupWebswitch, 1536<<10, false, 120, ms(0.042, 1.234, 12.345), 0.0123),
			benchRow("a|b", 512, true, 99.96, ms(0, 0.1, 1), 2),
		},
		Targets: []Target{{Name: "x | y", Got: "1", Met: true}},
		Notes:   []string{"two\nlines"},
	}
	r.Rows[0].RingDrops = 5
	r.Rows[0].BackendCPUPer1k = 0.01
	r.Rows[1].RingDrops = 5 // not shown: only webswitch has rings
	r.Rows[1].Wrk = &Wrk{RPS: 101, Errors: 3}
	r.Rows[1].MachineBusy = 0 // not measured: blank
	got := resultTable(t, r)
	want := []map[string]string{
		{
			"Size": "512 B", "Conn": "keep-alive", "Set-up": `a\|b`, "req/s": "100.0", "MB/s": "0.0512",
			"vs direct": "", "p50 ms": "0.00", "p99 ms": "0.10", "p99.9 ms": "1.00", "errors": "0",
			"CPU s/1k req": "2.00", "back-end CPU": "", "machine busy": "", "ring drops": "", "retrans": "0", "wrk req/s": "101 (3 errors)",
		},
		{
			"Size": "1.50 MiB", "Conn": "new conn", "Set-up": SetupWebswitch, "req/s": "120", "MB/s": "189",
			"vs direct": "", "p50 ms": "0.042", "p99 ms": "1.23", "p99.9 ms": "12.3", "errors": "0",
			"CPU s/1k req": "0.0123", "back-end CPU": "0.0100", "machine busy": "97%", "ring drops": "5", "retrans": "0", "wrk req/s": "",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cells (-want +got):\n%s", diff)
	}

	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	for _, want := range []string{"````", "wsbench bench -note '```'", `| x \| y | 1 | yes |`, "- two lines"} {
		if !slices.Contains(lines, want) {
			t.Errorf("Markdown has no line %q:\n%s", want, buf.String())
		}
	}
}
