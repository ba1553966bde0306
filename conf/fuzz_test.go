package conf

import (
	"errors"
	"strings"
	"testing"

	"webswitch/l7"
)

// FuzzParse decodes arbitrary text as both configuration files: it must
// not panic, every error must be an *Error naming the file and a line of
// it, and an accepted switch file must hold together, its pools and rules
// taken by l7.
//
// Kept crashers in testdata/fuzz/FuzzParse:
//   - 38aba32330786c66: a control character; the parser's error has the
//     byte offset -1, which sliced the text out of range.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[switch]\ninterface = \"eth0\"\nvip = \"198.18.0.100\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := strings.Count(string(data), "\n") + 1
		check := func(err error) {
			if err == nil {
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "fuzz.toml" || e.Line < 0 || e.Line > lines {
				t.Fatalf("error %v (%#v) is not an *Error in fuzz.toml within its %d lines", err, err, lines)
			}
		}
		s := new(Switch)
		err := parse("fuzz.toml", data, s)
		check(err)
		if err == nil {
			pools := make(map[string]bool)
			for _, p := range s.Pools {
				pools[p.Name] = true
			}
			for _, r := range s.Rules {
				if !pools[r.Pool] {
					t.Fatalf("accepted a rule for the unknown pool %q", r.Pool)
				}
			}
			for _, p := range s.L7Pools() {
				if err := p.Validate(); err != nil {
					t.Fatalf("accepted a pool l7 refuses: %v", err)
				}
			}
			if _, err := l7.NewRouter(s.L7Rules()); err != nil {
				t.Fatalf("accepted rules l7 refuses: %v", err)
			}
		}
		check(parse("fuzz.toml", data, new(Agent)))
	})
}
