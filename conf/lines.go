package conf

import (
	"strconv"
	"strings"
)

// The TOML library reports the line of a syntax error, but not the line of
// a key in a document it parsed: its key positions are private, and they
// drop array indices (every [[backend]] shares the key "backend.name").
// So the lines of keys are found here, by a small scanner over the text
// that knows just enough TOML to tell keys from values: table headers,
// dotted and quoted keys, strings of the four kinds, arrays and inline
// tables spanning lines, and comments.

// keyLine is the line (1-based) on which a key path first appears.
type keyLine struct {
	path string
	line int
}

// keyLines maps key paths, as the decoder spells them, to their lines.
type keyLines struct {
	list  []keyLine // in document order
	index map[string]int
}

func newKeyLines(text string) *keyLines {
	kl := &keyLines{list: scanKeys(text), index: make(map[string]int)}
	for _, k := range kl.list {
		if _, ok := kl.index[k.path]; !ok {
			kl.index[k.path] = k.line
		}
	}
	return kl
}

// line returns the line of path or, when path does not appear itself (a
// missing key, an array element, a key inside an inline table), of its
// nearest ancestor that does; 0 if none does.
func (kl *keyLines) line(path string) int {
	for path != "" {
		if l, ok := kl.index[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// before returns the path of the last key that starts on line or earlier,
// or "" if there is none.
func (kl *keyLines) before(line int) string {
	path := ""
	for _, k := range kl.list {
		if k.line > line {
			break
		}
		path = k.path
	}
	return path
}

// joinPath appends key to the key path parent.
func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// indexPath appends an array index to the key path p.
func indexPath(p string, i int) string {
	return p + "[" + strconv.Itoa(i) + "]"
}

// parentPath removes the last key or array index from path.
func parentPath(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// scanKeys returns the key paths of text with their lines, in document
// order: table headers ("switch", "backend[1]") and the keys of key/value
// pairs ("backend[1].address"). Keys inside inline tables are not listed.
// On a malformed document it stops being exact after the first error but
// always terminates.
func scanKeys(text string) []keyLine {
	sc := scanner{s: strings.TrimPrefix(text, "\ufeff"), line: 1, arrays: make(map[string]int)}
	for sc.skipSpace(); sc.i < len(sc.s); sc.skipSpace() {
		sc.statement()
	}
	return sc.out
}

type scanner struct {
	s      string
	i      int
	line   int
	out    []keyLine
	table  string         // path of the current table
	arrays map[string]int // path of an array of tables -> number of elements so far
}

// statement scans a table header or a key/value pair starting at a
// non-blank character.
func (sc *scanner) statement() {
	line := sc.line
	if sc.s[sc.i] == '[' {
		array := strings.HasPrefix(sc.s[sc.i:], "[[")
		sc.i++
		if array {
			sc.i++
		}
		if sc.table = sc.header(sc.key(), array); sc.table != "" {
			sc.out = append(sc.out, keyLine{sc.table, line})
		}
		sc.skipLine()
		return
	}
	keys := sc.key()
	if len(keys) == 0 {
		sc.skipLine()
		return
	}
	path := sc.table
	for _, k := range keys {
		path = joinPath(path, k)
	}
	sc.out = append(sc.out, keyLine{path, line})
	sc.skipBlank()
	if sc.i < len(sc.s) && sc.s[sc.i] == '=' {
		sc.i++
		sc.value()
	}
}

// header returns the path of a table header made of keys: the keys that
// name arrays of tables get the index of their last element, and the last
// key of an array header gets a new element.
func (sc *scanner) header(keys []string, array bool) string {
	path := ""
	for i, k := range keys {
		path = joinPath(path, k)
		n, isArray := sc.arrays[path]
		if array && i == len(keys)-1 {
			sc.arrays[path] = n + 1
			return indexPath(path, n)
		}
		if isArray {
			path = indexPath(path, n-1)
		}
	}
	return path
}

// key scans a possibly dotted key and returns its parts, unquoted.
func (sc *scanner) key() []string {
	var parts []string
	for {
		sc.skipBlank()
		if sc.i >= len(sc.s) {
			return parts
		}
		start := sc.i
		switch c := sc.s[sc.i]; {
		case c == '"' || c == '\'':
			sc.quoted(c)
			parts = append(parts, unquoteKey(sc.s[start:sc.i]))
		case isBareKeyChar(c):
			for sc.i < len(sc.s) && isBareKeyChar(sc.s[sc.i]) {
				sc.i++
			}
			parts = append(parts, sc.s[start:sc.i])
		default:
			return parts
		}
		sc.skipBlank()
		if sc.i >= len(sc.s) || sc.s[sc.i] != '.' {
			return parts
		}
		sc.i++
	}
}

// value skips a value, which ends at the first newline outside strings,
// arrays and inline tables.
func (sc *scanner) value() {
	depth := 0
	for sc.i < len(sc.s) {
		switch c := sc.s[sc.i]; c {
		case '"', '\'':
			sc.quoted(c)
		case '#':
			sc.skipLine()
		case '[', '{':
			depth++
			sc.i++
		case ']', '}':
			depth = max(depth-1, 0)
			sc.i++
		case '\n':
			if depth == 0 {
				return
			}
			sc.line++
			sc.i++
		default:
			sc.i++
		}
	}
}

// quoted skips a string opened by the quote q at sc.i: basic ("...") or
// literal ('...') on one line, or multi-line (three quotes of either kind).
func (sc *scanner) quoted(q byte) {
	delim := strings.Repeat(string(q), 3)
	if strings.HasPrefix(sc.s[sc.i:], delim) {
		sc.i += 3
		for sc.i < len(sc.s) && !strings.HasPrefix(sc.s[sc.i:], delim) {
			if sc.s[sc.i] == '\\' && q == '"' && sc.i+1 < len(sc.s) {
				sc.i++ // the escaped byte is skipped below
			}
			if sc.s[sc.i] == '\n' {
				sc.line++
			}
			sc.i++
		}
		sc.i += 3
		// Up to two quotes may precede the closing delimiter: """a"""" is `a"`.
		for n := 0; n < 2 && sc.i < len(sc.s) && sc.s[sc.i] == q; n++ {
			sc.i++
		}
		sc.i = min(sc.i, len(sc.s))
		return
	}
	for sc.i++; sc.i < len(sc.s) && sc.s[sc.i] != '\n'; sc.i++ {
		switch sc.s[sc.i] {
		case q:
			sc.i++
			return
		case '\\':
			if q == '"' && sc.i+1 < len(sc.s) && sc.s[sc.i+1] != '\n' {
				sc.i++
			}
		}
	}
}

// skipSpace skips whitespace, newlines and comments.
func (sc *scanner) skipSpace() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\r':
			sc.i++
		case '\n':
			sc.line++
			sc.i++
		case '#':
			sc.skipLine()
		default:
			return
		}
	}
}

// skipBlank skips spaces and tabs.
func (sc *scanner) skipBlank() {
	for sc.i < len(sc.s) && (sc.s[sc.i] == ' ' || sc.s[sc.i] == '\t') {
		sc.i++
	}
}

// skipLine skips to the end of the line, leaving the newline.
func (sc *scanner) skipLine() {
	if n := strings.IndexByte(sc.s[sc.i:], '\n'); n >= 0 {
		sc.i += n
	} else {
		sc.i = len(sc.s)
	}
}

func isBareKeyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// unquoteKey returns the name of a quoted key. Basic strings ("...") share
// Go's escapes but for TOML 1.1's \e and \xHH, which only the unknown-key
// error of such a key would need; those keep their escapes.
func unquoteKey(raw string) string {
	if raw[0] == '"' {
		if s, err := strconv.Unquote(raw); err == nil {
			return s
		}
	}
	return strings.Trim(raw, raw[:1])
}
