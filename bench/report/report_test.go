package report

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestJSONRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run") // Write creates it
	want := fixture()
	if err := Write(dir, want); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadJSON(Write(r)) differs (-want +got):\n%s", diff)
	}
}

func TestReadJSONBad(t *testing.T) {
	for _, in := range []string{"", "{", `{"rows": 3}`} {
		if _, err := ReadJSON(strings.NewReader(in)); err == nil {
			t.Errorf("ReadJSON(%q) succeeded", in)
		}
	}
}

func TestWriteJSONNotFinite(t *testing.T) {
	r := &Report{Rows: []Row{benchRow(SetupDirect, kib1, true, math.NaN(), ms(1, 2, 3), -1)}}
	if err := WriteJSON(&bytes.Buffer{}, r); err == nil {
		t.Error("WriteJSON with a NaN succeeded")
	}
}

// checkPNG checks that path is an 800x500 PNG with more than one colour.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if got, want := img.Bounds(), image.Rect(0, 0, 800, 500); got != want {
		t.Errorf("%s: bounds %v, want %v", path, got, want)
	}
	first := img.At(0, 0)
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			if !sameColor(img.At(x, y), first) {
				return
			}
		}
	}
	t.Errorf("%s: every pixel is %v", path, first)
}

func sameColor(a, b color.Color) bool {
	ar, ag, ab, aa := a.RGBA()
	br, bg, bb, ba := b.RGBA()
	return ar == br && ag == bg && ab == bb && aa == ba
}

// checkCharts checks which charts of a report directory exist and are
// readable, and that its Markdown links exactly those.
func checkCharts(t *testing.T, dir string, charts ...string) {
	t.Helper()
	md, err := os.ReadFile(filepath.Join(dir, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ThroughputFile, CPUFile, LatencyFile} {
		want := false
		for _, c := range charts {
			want = want || c == name
		}
		_, err := os.Stat(filepath.Join(dir, name))
		switch {
		case want && err != nil:
			t.Errorf("chart %s: %v", name, err)
		case want:
			checkPNG(t, filepath.Join(dir, name))
		case !errors.Is(err, fs.ErrNotExist):
			t.Errorf("chart %s: want none, stat gives %v", name, err)
		}
		if linked := bytes.Contains(md, []byte("]("+name+")")); linked != want {
			t.Errorf("Markdown links %s: %v, want %v", name, linked, want)
		}
	}
}

func TestWriteCharts(t *testing.T) {
	only := func(keep func(Row) bool) *Report {
		r := fixture()
		var rows []Row
		for _, row := range r.Rows {
			if keep(row) {
				rows = append(rows, row)
			}
		}
		r.Rows = rows
		return r
	}
	tests := []struct {
		name   string
		r      *Report
		charts []string
	}{
		{"full run", fixture(), []string{ThroughputFile, CPUFile, LatencyFile}},
		{"no rows", &Report{Command: "wsbench bench"}, nil},
		{"direct only", only(func(r Row) bool { return r.Setup == SetupDirect }), []string{ThroughputFile, LatencyFile}},
		{"new connections only", only(func(r Row) bool { return !r.KeepAlive }), []string{ThroughputFile, CPUFile, LatencyFile}},
		{"one size", only(func(r Row) bool { return r.Size == mib1 && r.KeepAlive }), []string{ThroughputFile, CPUFile, LatencyFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Write(dir, tt.r); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, JSONFile)); err != nil {
				t.Error(err)
			}
			checkCharts(t, dir, tt.charts...)
		})
	}
}

// TestWriteChartsUnplottable checks that non-finite values and empty
// responses are left out of the charts (JSON cannot hold non-finite
// values: see TestWriteJSONNotFinite).
func TestWriteChartsUnplottable(t *testing.T) {
	r := &Report{Rows: []Row{
		benchRow(SetupHAProxy, 0, true, 5000, ms(1, 2, 3), 0.5),
		benchRow(SetupDirect, kib1, true, math.NaN(), ms(math.NaN(), math.NaN(), math.NaN()), -1),
		benchRow(SetupDirect, mib1, true, 100, ms(1, 2, 3), -1),
		benchRow(SetupWebswitch, kib1, true, 1000, ms(1, 2, 3), math.Inf(1)),
	}}
	dir := t.TempDir()
	if err := writeFile(filepath.Join(dir, MarkdownFile), r, WriteMarkdown); err != nil {
		t.Fatal(err)
	}
	if err := WriteCharts(dir, r); err != nil {
		t.Fatal(err)
	}
	checkCharts(t, dir, ThroughputFile, LatencyFile)
}

func TestChartSeries(t *testing.T) {
	var got []string
	for _, c := range buildCharts(fixture()) {
		line := c.file + ":"
		for _, s := range c.series {
			line += " " + s.name
			if s.dashed {
				line += "(dashed)"
			}
			line += fmt.Sprintf("/%d", len(s.points))
		}
		got = append(got, line)
	}
	want := []string{
		"throughput.png: direct/4 webswitch/4 haproxy/4 nginx/4",
		"cpu.png: webswitch/4 haproxy/4 nginx/4 webswitch (new conn)(dashed)/2 haproxy (new conn)(dashed)/2 nginx (new conn)(dashed)/2",
		"latency.png: direct/4 webswitch/4 haproxy/4 nginx/4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chart series (-want +got):\n%s", diff)
	}
}

func TestSpansDecades(t *testing.T) {
	tests := []struct {
		vs   []float64
		want bool
	}{
		{nil, false},
		{[]float64{0, 0}, false},
		{[]float64{1, 100}, false},
		{[]float64{0.021, 15.8}, true},
		{[]float64{0, 0.5, 10}, false}, // zeros are left out
		{[]float64{0, 0.05, 10}, true},
	}
	for _, tt := range tests {
		if got := spansDecades(tt.vs, 2); got != tt.want {
			t.Errorf("spansDecades(%v, 2) = %v, want %v", tt.vs, got, tt.want)
		}
	}
}
