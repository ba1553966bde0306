package conf

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
)

func TestScanKeys(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []keyLine
	}{
		{"empty", "", nil},
		{"top-level keys", "a = 1\n\nb = 'x' # c\n", []keyLine{{"a", 1}, {"b", 3}}},
		{"tables", "[t]\nk = 1\n[u . v]\nk = 2\n", []keyLine{{"t", 1}, {"t.k", 2}, {"u.v", 3}, {"u.v.k", 4}}},
		{"dotted and quoted keys", "[\"a b\".'c.d']\ne.\"f\\u0041\" = 1\n", []keyLine{{"a b.c.d", 1}, {"a b.c.d.e.fA", 2}}},
		{"arrays of tables", "[[b]]\nn = 1\n[[b]]\nn = 2\n[b.sub]\nx = 1\n[[b.arr]]\n[[c]]\n", []keyLine{
			{"b[0]", 1}, {"b[0].n", 2}, {"b[1]", 3}, {"b[1].n", 4}, {"b[1].sub", 5}, {"b[1].sub.x", 6}, {"b[1].arr[0]", 7}, {"c[0]", 8},
		}},
		{"nested array restarts per parent", "[[a]]\n[[a.b]]\n[[a]]\n[[a.b]]\n[[a.b]]\n", []keyLine{
			{"a[0]", 1}, {"a[0].b[0]", 2}, {"a[1]", 3}, {"a[1].b[0]", 4}, {"a[1].b[1]", 5},
		}},
		{"multi-line array", "a = [\n 1, # ] not the end\n \"]\", ']',\n [2, 3],\n]\nb = 2\n", []keyLine{{"a", 1}, {"b", 6}}},
		{"multi-line strings", "a = \"\"\"\nx = 1\n[t]\\\"\"\"\"\"\nb = '''\n[[u]]\n'''\nc = 3\n", []keyLine{{"a", 1}, {"b", 4}, {"c", 7}}},
		{"inline tables", "a = { b = 1, c = { d = \"}\" } }\ne = [{ f = 1 },\n { f = 2 }]\ng = 1\n", []keyLine{{"a", 1}, {"e", 2}, {"g", 4}}},
		{"header comment and CRLF", "[t] # [u]\r\nk = 1\r\n", []keyLine{{"t", 1}, {"t.k", 2}}},
		{"byte order mark", "\ufeffa = 1\n", []keyLine{{"a", 1}}},
		{"garbage line", "= 1\n!\nk = 1\n", []keyLine{{"k", 3}}},
		{"unterminated string", "a = \"x\nb = 1\n", []keyLine{{"a", 1}, {"b", 2}}},
		{"unterminated multi-line string", "a = '''x\nb = 1\n", []keyLine{{"a", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, scanKeys(tt.text), cmp.AllowUnexported(keyLine{})); diff != "" {
				t.Errorf("scanKeys(%q) mismatch (-want +got):\n%s", tt.text, diff)
			}
		})
	}
}

func TestKeyLinesLookup(t *testing.T) {
	kl := newKeyLines("[s]\nk = 1\n[[b]]\nx = [1,\n2]\n[[b]]\nx = 1\nx = 2\n")
	tests := []struct {
		path string
		want int
	}{
		{"s.k", 2},
		{"s.missing", 1},
		{"b[0].x", 4},
		{"b[0].x[1]", 4},
		{"b[1].x", 7}, // the first of two
		{"b[1].y.z", 6},
		{"b[2].x", 0},
		{"missing", 0},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := kl.line(tt.path); got != tt.want {
				t.Errorf("line(%q) = %d, want %d", tt.path, got, tt.want)
			}
		})
	}
	for line, want := range []string{"", "s", "s.k", "b[0]", "b[0].x", "b[0].x", "b[1]"} {
		if got := kl.before(line); got != want {
			t.Errorf("before(%d) = %q, want %q", line, got, want)
		}
	}
}

var arrayIndex = regexp.MustCompile(`\[[0-9]+\]`)

// FuzzScanKeys checks that scanKeys terminates on any input and, on the
// documents the TOML library accepts, finds keys the library finds too, on
// lines that hold them.
func FuzzScanKeys(f *testing.F) {
	f.Add("[switch]\nvip = \"198.18.0.100\"\n[[backend]]\nname = \"a\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		got := scanKeys(text)
		lines := strings.Split(strings.TrimPrefix(text, "\ufeff"), "\n")
		for i, k := range got {
			if k.line < 1 || k.line > len(lines) || i > 0 && k.line < got[i-1].line {
				t.Fatalf("key %q at line %d: out of order or outside the %d lines", k.path, k.line, len(lines))
			}
		}
		var doc map[string]any
		md, err := toml.Decode(text, &doc)
		if err != nil {
			return
		}
		known := make(map[string]bool)
		for _, k := range md.Keys() {
			if slices.ContainsFunc(k, func(s string) bool {
				return s == "" || strings.ContainsFunc(s, func(c rune) bool { return c > 0x7f || !isBareKeyChar(byte(c)) })
			}) {
				return // names that do not survive joining with "." and indexing
			}
			known[strings.Join(k, ".")] = true
		}
		for _, k := range got {
			if !known[arrayIndex.ReplaceAllString(k.path, "")] {
				t.Fatalf("scanned key %q at line %d is not a key of the document (%v)", k.path, k.line, md.Keys())
			}
			if name := k.path[strings.LastIndexAny(k.path, ".[")+1:]; !strings.HasSuffix(name, "]") && !strings.Contains(lines[k.line-1], name) {
				t.Fatalf("scanned key %q is not on line %d: %q", k.path, k.line, lines[k.line-1])
			}
		}
	})
}
