package l7

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parsed is everything a Request reports, as strings for cmp.Diff.
type parsed struct {
	Status        Status
	HeadLen       int
	Method        string
	Target        string
	Path          string
	Host          string
	Minor         int
	Headers       []string // "name: value"
	ContentLength int64
	HasCL         bool
	Chunked       bool
}

// snapshot reads the accessors of r, which returned st on buf. Only the
// status is kept unless st is Done. It also checks that every slice the
// accessors return lies inside buf.
func snapshot(t testing.TB, r *Request, buf []byte, st Status) parsed {
	t.Helper()
	if st != Done {
		return parsed{Status: st}
	}
	inBuf := func(what string, s []byte) string {
		if len(s) > 0 && !aliases(buf, s) && string(s) != "/" {
			t.Fatalf("%s %q does not alias buf", what, s)
		}
		return string(s)
	}
	p := parsed{
		Status:  st,
		HeadLen: r.HeadLen(),
		Method:  inBuf("method", r.Method(buf)),
		Target:  inBuf("target", r.Target(buf)),
		Path:    inBuf("path", r.Path(buf)),
		Host:    inBuf("host", r.Host(buf)),
		Minor:   r.Minor(),
		Chunked: r.Chunked(),
	}
	p.ContentLength, p.HasCL = r.ContentLength()
	for i := range r.NumHeaders() {
		n, v := r.HeaderAt(buf, i)
		p.Headers = append(p.Headers, inBuf("name", n)+": "+inBuf("value", v))
	}
	if p.HeadLen > len(buf) {
		t.Fatalf("HeadLen %d > len(buf) %d", p.HeadLen, len(buf))
	}
	return p
}

// aliases reports whether s is a sub-slice of buf.
func aliases(buf, s []byte) bool {
	if len(s) == 0 || len(buf) == 0 {
		return false
	}
	for i := range buf {
		if &buf[i] == &s[0] {
			return i+len(s) <= len(buf)
		}
	}
	return false
}

// incremental is a parser of this package: Request or ClientHello.
type incremental interface {
	Reset(max int)
	Parse(buf []byte) Status
}

// feedAt resets p with max and gives it buf[:cut] and then buf, as two
// segments (cut = len(buf): one segment).
func feedAt(p incremental, buf []byte, max, cut int) Status {
	p.Reset(max)
	p.Parse(buf[:cut])
	return p.Parse(buf)
}

// feedBytewise resets p with max and feeds it buf one byte at a time.
func feedBytewise(p incremental, buf []byte, max int) Status {
	p.Reset(max)
	st := p.Parse(buf[:0])
	for i := 1; i <= len(buf); i++ {
		st = p.Parse(buf[:i])
	}
	return st
}

func parseWhole(t testing.TB, buf []byte, maxHead int) parsed {
	return parseAt(t, buf, maxHead, len(buf))
}

// parseAt parses buf[:cut] and then buf, as two segments.
func parseAt(t testing.TB, buf []byte, maxHead, cut int) parsed {
	var r Request
	return snapshot(t, &r, buf, feedAt(&r, buf, maxHead, cut))
}

// parseBytewise feeds buf one byte at a time and returns the last result.
func parseBytewise(t testing.TB, buf []byte, maxHead int) parsed {
	var r Request
	return snapshot(t, &r, buf, feedBytewise(&r, buf, maxHead))
}

type parseCase struct {
	name    string
	in      string // the head, or the whole input of a bad case
	after   string // bytes after the head
	maxHead int    // 0: default
	want    parsed // HeadLen is filled in by allCases
}

func (c parseCase) input() []byte { return []byte(c.in + c.after) }

const simple = "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"

var validCases = []parseCase{
	{
		name: "simple",
		in:   simple,
		want: parsed{Status: Done, Method: "GET", Target: "/a/b?x=1", Path: "/a/b", Host: "example.com", Minor: 1,
			Headers: []string{"Host: example.com", "Accept: */*"}},
	},
	{
		name: "bare LF",
		in:   "GET / HTTP/1.1\nHost: a\n\n",
		want: parsed{Status: Done, Method: "GET", Target: "/", Path: "/", Host: "a", Minor: 1, Headers: []string{"Host: a"}},
	},
	{
		name: "HTTP/1.0 without host or headers",
		in:   "HEAD /x HTTP/1.0\r\n\r\n",
		want: parsed{Status: Done, Method: "HEAD", Target: "/x", Path: "/x"},
	},
	{
		name: "empty lines before request line",
		in:   "\r\n\n\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		want: parsed{Status: Done, Method: "GET", Target: "/", Path: "/"},
	},
	{
		name: "absolute-form wins over Host",
		in:   "GET hTTp://Origin.example:8080/p/q?r HTTP/1.1\r\nHost: other\r\n\r\n",
		want: parsed{Status: Done, Method: "GET", Target: "hTTp://Origin.example:8080/p/q?r", Path: "/p/q", Host: "Origin.example", Minor: 1,
			Headers: []string{"Host: other"}},
	},
	{
		name: "absolute-form https without path",
		in:   "GET https://h?q HTTP/1.1\r\nHost: h\r\n\r\n",
		want: parsed{Status: Done, Method: "GET", Target: "https://h?q", Path: "/", Host: "h", Minor: 1, Headers: []string{"Host: h"}},
	},
	{
		name: "asterisk-form",
		in:   "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		want: parsed{Status: Done, Method: "OPTIONS", Target: "*", Path: "*", Host: "h", Minor: 1, Headers: []string{"Host: h"}},
	},
	{
		name: "host port stripped",
		in:   "GET / HTTP/1.1\r\nhOsT: Example.com:8080\r\n\r\n",
		want: parsed{Status: Done, Method: "GET", Target: "/", Path: "/", Host: "Example.com", Minor: 1, Headers: []string{"hOsT: Example.com:8080"}},
	},
	{
		name: "IPv6 host",
		in:   "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n",
		want: parsed{Status: Done, Method: "GET", Target: "/", Path: "/", Host: "[2001:db8::1]", Minor: 1, Headers: []string{"Host: [2001:db8::1]:80"}},
	},
	{
		name: "empty Host",
		in:   "GET / HTTP/1.1\r\nHost:\r\n\r\n",
		want: parsed{Status: Done, Method: "GET", Target: "/", Path: "/", Minor: 1, Headers: []string{"Host: "}},
	},
	{
		name: "OWS trimmed, inner whitespace kept",
		in:   "GET / HTTP/1.0\r\nX-A: \t a \t b \t\r\nX-B:c\r\n\r\n",
		want: parsed{Status: Done, Method: "GET", Target: "/", Path: "/", Headers: []string{"X-A: a \t b", "X-B: c"}},
	},
	{
		name: "obs-text and percent-encoding in target, obs-text in value",
		in:   "GET /caf\xc3\xa9%2F%aB?%20 HTTP/1.0\r\nX: \xff\r\n\r\n",
		want: parsed{Status: Done, Method: "GET", Target: "/caf\xc3\xa9%2F%aB?%20", Path: "/caf\xc3\xa9%2F%aB", Headers: []string{"X: \xff"}},
	},
	{
		name:  "repeated equal Content-Length",
		in:    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
		after: "hello",
		want: parsed{Status: Done, Method: "POST", Target: "/", Path: "/", Host: "h", Minor: 1,
			Headers: []string{"Host: h", "Content-Length: 5", "content-length: 5"}, ContentLength: 5, HasCL: true},
	},
	{
		name:  "chunked",
		in:    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \tChunked \r\n\r\n",
		after: "0\r\n\r\n",
		want: parsed{Status: Done, Method: "POST", Target: "/", Path: "/", Host: "h", Minor: 1,
			Headers: []string{"Host: h", "Transfer-Encoding: Chunked"}, Chunked: true},
	},
	{
		name:  "pipelined request after the head",
		in:    "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n",
		after: "GET /2 HTTP/1.1\r\n",
		want:  parsed{Status: Done, Method: "GET", Target: "/1", Path: "/1", Host: "h", Minor: 1, Headers: []string{"Host: h"}},
	},
	{
		name:    "head exactly maxHead",
		in:      "GET / HTTP/1.0\r\n\r\n",
		maxHead: 18,
		want:    parsed{Status: Done, Method: "GET", Target: "/", Path: "/"},
	},
	{
		name: "MaxHeaders headers",
		in:   "GET / HTTP/1.0\r\n" + strings.Repeat("X: y\r\n", MaxHeaders) + "\r\n",
		want: parsed{Status: Done, Method: "GET", Target: "/", Path: "/",
			Headers: strings.Split(strings.Repeat("X: y\n", MaxHeaders-1)+"X: y", "\n")},
	},
}

var badCases = []parseCase{
	{name: "no spaces", in: "GET\r\n\r\n"},
	{name: "no version", in: "GET /\r\n\r\n"},
	{name: "double space", in: "GET  / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "leading space", in: " GET / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "trailing space", in: "GET / HTTP/1.1 \r\nHost: h\r\n\r\n"},
	{name: "method not a token", in: "G(T / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "tab in target", in: "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "DEL in target", in: "GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "CR in request line", in: "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "lower-case version", in: "GET / http/1.1\r\nHost: h\r\n\r\n"},
	{name: "HTTP/1.2", in: "GET / HTTP/1.2\r\nHost: h\r\n\r\n"},
	{name: "HTTP/0.9 style", in: "GET /\r\n"},
	{name: "HTTP/2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
	{name: "fragment", in: "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "bad percent-encoding", in: "GET /a%2x HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "truncated percent-encoding", in: "GET /a%2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "relative target", in: "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "asterisk without OPTIONS", in: "GET * HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "CONNECT authority-form", in: "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"},
	{name: "ftp scheme", in: "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "userinfo", in: "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "empty authority", in: "GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n"},
	{name: "too many empty lines first", in: strings.Repeat("\r\n", maxBlankLines+1) + "GET / HTTP/1.0\r\n\r\n"},
	{name: "header without colon", in: "GET / HTTP/1.1\r\nHost h\r\n\r\n"},
	{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : h\r\n\r\n"},
	{name: "empty header name", in: "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n"},
	{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  b\r\n\r\n"},
	{name: "whitespace line after request line", in: "GET / HTTP/1.0\r\n \r\n\r\n"},
	{name: "CTL in value", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n"},
	{name: "NUL in value", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00\r\n\r\n"},
	{name: "bare CR in value", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n"},
	{name: "DEL in value", in: "GET / HTTP/1.1\r\nHost: h\r\nX: \x7f\r\n\r\n"},
	{name: "HTTP/1.1 without Host", in: "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"},
	{name: "two Host headers", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"},
	{name: "Host with path", in: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
	{name: "Host with userinfo", in: "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"},
	{name: "Host with space", in: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
	{name: "Host bad port", in: "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"},
	{name: "Host long port", in: "GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n"},
	{name: "Host port only", in: "GET / HTTP/1.1\r\nHost: :80\r\n\r\n"},
	{name: "Host unclosed IPv6", in: "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"},
	{name: "Host two colons", in: "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n"},
	{name: "Content-Length not digits", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5x\r\n\r\n"},
	{name: "Content-Length signed", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n"},
	{name: "Content-Length empty", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"},
	{name: "Content-Length list", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n"},
	{name: "Content-Length conflict", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"},
	{name: "Content-Length overflow", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999999\r\n\r\n"},
	{name: "Content-Length then Transfer-Encoding", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"},
	{name: "Transfer-Encoding then Content-Length", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"},
	{name: "Transfer-Encoding in HTTP/1.0", in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"},
	{name: "Transfer-Encoding not chunked", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"},
	{name: "Transfer-Encoding chunked not last", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"},
	{name: "Transfer-Encoding list ending in chunked", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
	{name: "Transfer-Encoding gzip then chunked lines", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"},
	{name: "Transfer-Encoding chunked twice", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"},
	{name: "Transfer-Encoding empty", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n"},
	{name: "Transfer-Encoding quoted", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"},
}

var tooLargeCases = []parseCase{
	{name: "too many headers", in: "GET / HTTP/1.0\r\n" + strings.Repeat("X: y\r\n", MaxHeaders+1) + "\r\n"},
	{name: "head one byte over", in: "GET / HTTP/1.0\r\n\r\n", maxHead: 17},
	{name: "line without end over the limit", in: "GET /" + strings.Repeat("a", 100), maxHead: 64},
	{name: "default limit", in: "GET / HTTP/1.0\r\nX: " + strings.Repeat("a", DefaultMaxHead) + "\r\n\r\n"},
}

func allCases() []parseCase {
	var cs []parseCase
	for _, c := range validCases {
		c.want.HeadLen = len(c.in)
		cs = append(cs, c)
	}
	for _, c := range badCases {
		c.want = parsed{Status: Malformed}
		cs = append(cs, c)
	}
	for _, c := range tooLargeCases {
		c.want = parsed{Status: TooLarge}
		cs = append(cs, c)
	}
	return cs
}

func TestParse(t *testing.T) {
	for _, c := range allCases() {
		t.Run(c.name, func(t *testing.T) {
			got := parseWhole(t, c.input(), c.maxHead)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", c.in, diff)
			}
		})
	}
}

// TestParseSplit checks that every way of cutting the input in two
// segments, and feeding it byte by byte, gives the result of the whole.
func TestParseSplit(t *testing.T) {
	for _, c := range allCases() {
		t.Run(c.name, func(t *testing.T) {
			buf := c.input()
			for cut := range len(buf) {
				if diff := cmp.Diff(c.want, parseAt(t, buf, c.maxHead, cut)); diff != "" {
					t.Fatalf("cut at %d mismatch (-want +got):\n%s", cut, diff)
				}
			}
			if diff := cmp.Diff(c.want, parseBytewise(t, buf, c.maxHead)); diff != "" {
				t.Fatalf("byte by byte mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParsePrefixNeedMore checks that every proper prefix of a valid head
// asks for more.
func TestParsePrefixNeedMore(t *testing.T) {
	for _, c := range validCases {
		t.Run(c.name, func(t *testing.T) {
			buf := c.input()
			for n := range len(c.in) {
				if got := parseWhole(t, buf[:n], c.maxHead).Status; got != NeedMore {
					t.Fatalf("prefix of %d bytes: got %v, want NeedMore", n, got)
				}
			}
		})
	}
}

func TestParseSticky(t *testing.T) {
	tests := []struct {
		name  string
		first string
		later string
		want  Status
	}{
		{name: "Done", first: "GET / HTTP/1.0\r\n\r\n", later: "garbage\r\n\r\n", want: Done},
		{name: "Malformed", first: "GET / HTTP/9.9\r\n", later: "Host: h\r\n\r\n", want: Malformed},
		{name: "TooLarge", first: strings.Repeat("a", 32), later: "\r\n\r\n", want: TooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			r.Reset(32)
			buf := []byte(tt.first + tt.later)
			if got := r.Parse(buf[:len(tt.first)]); got != tt.want {
				t.Fatalf("first Parse = %v, want %v", got, tt.want)
			}
			if got := r.Parse(buf); got != tt.want {
				t.Fatalf("second Parse = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseShrunkBuffer(t *testing.T) {
	var r Request
	r.Reset(0)
	buf := []byte("GET / HTTP/1.1\r\nHost: h\r\n")
	if got := r.Parse(buf); got != NeedMore {
		t.Fatalf("Parse = %v, want NeedMore", got)
	}
	if got := r.Parse(buf[:4]); got != Malformed {
		t.Fatalf("Parse of a shorter buffer = %v, want Malformed", got)
	}
}

func TestZeroRequestAndReset(t *testing.T) {
	var r Request // no Reset: default limit
	head := "GET / HTTP/1.0\r\nX: " + strings.Repeat("a", DefaultMaxHead-23) + "\r\n\r\n"
	if len(head) != DefaultMaxHead {
		t.Fatalf("test head is %d bytes", len(head))
	}
	if got := r.Parse([]byte(head)); got != Done {
		t.Fatalf("zero Request, head of DefaultMaxHead: %v, want Done", got)
	}
	r.Reset(MaxHeadLimit * 2)
	if r.maxHead != MaxHeadLimit {
		t.Fatalf("Reset clamps to %d, want %d", r.maxHead, MaxHeadLimit)
	}
	if got := r.Parse([]byte(simple)); got != Done || r.NumHeaders() != 2 {
		t.Fatalf("after Reset: %v with %d headers", got, r.NumHeaders())
	}
}

func TestHeader(t *testing.T) {
	buf := []byte("GET / HTTP/1.1\r\nHost: h\r\nX-Dup: first\r\nx-dup: second\r\nX-Empty:\r\n\r\n")
	var r Request
	r.Reset(0)
	if st := r.Parse(buf); st != Done {
		t.Fatalf("Parse = %v", st)
	}
	tests := []struct {
		name   string
		header string
		want   string
		ok     bool
	}{
		{name: "exact case", header: "Host", want: "h", ok: true},
		{name: "other case", header: "HOST", want: "h", ok: true},
		{name: "first of duplicates", header: "x-DUP", want: "first", ok: true},
		{name: "empty value", header: "x-empty", want: "", ok: true},
		{name: "missing", header: "X-Missing"},
		{name: "prefix of a name", header: "X-Du"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := r.Header(buf, tt.header)
			if string(v) != tt.want || ok != tt.ok {
				t.Fatalf("Header(%q) = %q, %v; want %q, %v", tt.header, v, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCookie(t *testing.T) {
	buf := []byte("GET / HTTP/1.1\r\nHost: h\r\n" +
		"Cookie: a=1; bb = 2 ;flag; q=\"quoted\";e=\r\n" +
		"cookie: c=3; a=shadowed\r\n\r\n")
	var r Request
	r.Reset(0)
	if st := r.Parse(buf); st != Done {
		t.Fatalf("Parse = %v", st)
	}
	tests := []struct {
		name   string
		cookie string
		want   string
		ok     bool
	}{
		{name: "first pair", cookie: "a", want: "1", ok: true},
		{name: "spaces around", cookie: "bb", want: "2", ok: true},
		{name: "quotes removed", cookie: "q", want: "quoted", ok: true},
		{name: "empty value", cookie: "e", want: "", ok: true},
		{name: "second header", cookie: "c", want: "3", ok: true},
		{name: "pair without value skipped", cookie: "flag"},
		{name: "case-sensitive", cookie: "A"},
		{name: "prefix of a name", cookie: "b"},
		{name: "missing", cookie: "zz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := r.Cookie(buf, tt.cookie)
			if string(v) != tt.want || ok != tt.ok {
				t.Fatalf("Cookie(%q) = %q, %v; want %q, %v", tt.cookie, v, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	tests := []struct {
		s    Status
		want string
	}{
		{0, "Status(0)"},
		{NeedMore, "NeedMore"},
		{Done, "Done"},
		{Malformed, "Malformed"},
		{TooLarge, "TooLarge"},
		{TooLarge + 1, "Status(5)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("Status(%d).String() = %q, want %q", uint8(tt.s), got, tt.want)
		}
	}
}
