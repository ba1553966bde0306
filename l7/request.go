package l7

import (
	"bytes"
	"strconv"
)

// Status is the result of an incremental parse. The zero value is not a
// valid status.
type Status uint8

// Parse results.
const (
	NeedMore  Status = iota + 1 // head not complete yet
	Done                        // head complete; accessors are valid
	Malformed                   // switch answers 400
	TooLarge                    // head over the limit or too many headers: switch answers 431
)

// String returns the status name.
func (s Status) String() string {
	switch s {
	case NeedMore:
		return "NeedMore"
	case Done:
		return "Done"
	case Malformed:
		return "Malformed"
	case TooLarge:
		return "TooLarge"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Limits of the parser.
const (
	// MaxHeaders is the number of header lines a Request holds; a head
	// with more is TooLarge.
	MaxHeaders = 64
	// DefaultMaxHead is the head size limit used when Reset is given
	// maxHead <= 0 (or Parse is called on a zero Request).
	DefaultMaxHead = 8 << 10
	// MaxHeadLimit is the largest head size limit accepted; Reset clamps
	// larger values to it.
	MaxHeadLimit = 1 << 20
	// maxBlankLines is how many empty lines before the request line are
	// ignored; one more is Malformed.
	maxBlankLines = 4
	// maxContentLengthDigits bounds Content-Length so it fits an int64.
	maxContentLengthDigits = 18
)

// span is a half-open byte range [off, end) of the caller's buffer.
type span struct{ off, end uint32 }

func (s span) of(buf []byte) []byte { return buf[s.off:s.end:s.end] }

// field is one header line: its name and its value trimmed of OWS.
type field struct{ name, value span }

// Request is an incremental parser for one HTTP/1.0 or HTTP/1.1 request
// head. It keeps only offsets into the caller's buffer, in fixed-size
// arrays, so it never allocates and holds no pointer to the buffer; every
// accessor therefore takes the buffer that was parsed, and the slices it
// returns alias that buffer.
//
// The grammar is deliberately strict (RFC 9112 with the options that refuse
// ambiguity), because the switch and the back-end must never disagree on
// where a request ends:
//
//   - Lines end in CRLF or a bare LF. Up to 4 empty lines before the
//     request line are ignored.
//   - Request line: method SP request-target SP HTTP-version, single
//     spaces. The method is a token. The version is exactly HTTP/1.0 or
//     HTTP/1.1; anything else, the HTTP/2 preface "PRI * HTTP/2.0"
//     included, is Malformed.
//   - Request target: non-empty, no CTL or SP byte (obs-text bytes >= 0x80
//     are accepted, as nginx does), no "#" (a fragment is never sent), and
//     every "%" followed by two hex digits. It is in origin-form ("/p?q"),
//     absolute-form with an http or https scheme ("http://host:port/p?q",
//     no userinfo), or asterisk-form ("*") with OPTIONS only.
//     Authority-form (CONNECT) is refused: a Web switch is not a forward
//     proxy.
//   - Header line: name ":" OWS value OWS. The name is a token with no
//     whitespace before the colon; a line starting with SP or HTAB
//     (obs-fold) is Malformed; CTL bytes other than HTAB in a value are
//     Malformed.
//   - Host: required in HTTP/1.1, at most one, a valid authority (reg-name
//     of unreserved and sub-delims characters, or an IP literal in
//     brackets, optional numeric port; no percent-encoding, no userinfo).
//   - Message framing (smuggling defence): Content-Length is 1*DIGIT, may
//     repeat only with the same value. Transfer-Encoding must be the
//     single value "chunked" (as Go's net/http and nginx accept), on one
//     header line, in HTTP/1.1, without Content-Length.
//
// A head whose terminating empty line does not end within maxHead bytes of
// the start of the buffer is TooLarge, and so is one with more than
// MaxHeaders header lines.
type Request struct {
	status   Status
	minor    uint8
	blank    uint8 // empty lines skipped before the request line
	started  bool  // request line parsed
	absolute bool  // target in absolute-form: its authority is the host
	hostSeen bool  // Host header seen
	clSeen   bool  // Content-Length seen
	chunked  bool  // Transfer-Encoding: chunked seen
	n        uint8 // header lines stored in fields

	maxHead uint32
	pos     uint32 // start of the first line not yet parsed
	scan    uint32 // where the search for the next LF resumes
	cl      int64

	method, target, path span
	hostHeader, hostAuth span // Host header value and absolute-form authority, ports stripped
	fields               [MaxHeaders]field
}

// Reset makes r ready for a new request. maxHead is the size limit of the
// head including its final empty line (and any empty lines before the
// request line); values <= 0 mean DefaultMaxHead, values above
// MaxHeadLimit are clamped to it.
func (r *Request) Reset(maxHead int) {
	*r = Request{maxHead: uint32(limit(maxHead, DefaultMaxHead, MaxHeadLimit))}
}

// limit returns v, or def when v <= 0, clamped to max: a parser's size
// limit as Reset takes it.
func limit(v, def, max int) int {
	switch {
	case v <= 0:
		return def
	case v > max:
		return max
	}
	return v
}

// Parse consumes the complete lines of buf it has not seen yet. buf holds
// all the bytes of the request received so far: between two calls it may
// only grow, its prefix unchanged. Parse resumes where it stopped and never
// rescans a byte looking for a line end. Once it returns Done, Malformed or
// TooLarge, later calls return the same status. Bytes after the head (a
// body, a pipelined request) are not looked at.
//
// A buf shorter than the bytes already consumed breaks that contract and
// gives Malformed.
func (r *Request) Parse(buf []byte) Status {
	if r.status > NeedMore {
		return r.status
	}
	if r.maxHead == 0 {
		r.maxHead = DefaultMaxHead
	}
	if len(buf) < int(r.scan) {
		r.status = Malformed
		return Malformed
	}
	limit := min(len(buf), int(r.maxHead))
	for {
		i := bytes.IndexByte(buf[r.scan:limit], '\n')
		if i < 0 {
			r.scan = uint32(limit)
			if len(buf) >= int(r.maxHead) {
				r.status = TooLarge
			} else {
				r.status = NeedMore
			}
			return r.status
		}
		lf := int(r.scan) + i
		start, end := int(r.pos), lf
		if end > start && buf[end-1] == '\r' {
			end--
		}
		r.pos = uint32(lf + 1)
		r.scan = r.pos
		if st := r.line(buf, start, end); st != NeedMore {
			r.status = st
			return st
		}
	}
}

// line handles one complete line buf[start:end] (line end removed). It
// returns NeedMore to go on with the next line.
func (r *Request) line(buf []byte, start, end int) Status {
	if !r.started {
		if start == end {
			r.blank++
			if r.blank > maxBlankLines {
				return Malformed
			}
			return NeedMore
		}
		r.started = true
		return r.requestLine(buf, start, end)
	}
	if start == end {
		return r.finish()
	}
	return r.headerLine(buf, start, end)
}

// requestLine parses "method SP target SP HTTP/1.x".
func (r *Request) requestLine(buf []byte, start, end int) Status {
	line := buf[start:end]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || !isToken(line[:sp1]) {
		return Malformed
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return Malformed
	}
	target, version := rest[:sp2], rest[sp2+1:]
	for i, c := range target {
		switch {
		case c <= ' ' || c == 0x7f || c == '#':
			return Malformed
		case c == '%' && (i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2])):
			return Malformed
		}
	}
	switch string(version) {
	case "HTTP/1.0":
		r.minor = 0
	case "HTTP/1.1":
		r.minor = 1
	default:
		return Malformed
	}
	r.method = span{uint32(start), uint32(start + sp1)}
	toff := start + sp1 + 1
	r.target = span{uint32(toff), uint32(toff + sp2)}
	return r.requestTarget(buf, line[:sp1], target, toff)
}

// requestTarget classifies the target (found at buf offset toff) and sets
// the path and, for absolute-form, the authority.
func (r *Request) requestTarget(buf, method, target []byte, toff int) Status {
	switch {
	case target[0] == '/':
		r.path = span{uint32(toff), uint32(toff + pathEnd(target))}
		return NeedMore
	case len(target) == 1 && target[0] == '*':
		if string(method) != "OPTIONS" {
			return Malformed
		}
		r.path = r.target
		return NeedMore
	}
	var auth int // offset of the authority in target
	switch {
	case hasPrefixFold(target, "http://"):
		auth = len("http://")
	case hasPrefixFold(target, "https://"):
		auth = len("https://")
	default:
		return Malformed
	}
	authEnd := auth
	for authEnd < len(target) && target[authEnd] != '/' && target[authEnd] != '?' {
		authEnd++
	}
	hostLen, ok := splitAuthority(target[auth:authEnd])
	if !ok || hostLen == 0 {
		return Malformed
	}
	r.absolute = true
	r.hostAuth = span{uint32(toff + auth), uint32(toff + auth + hostLen)}
	if authEnd < len(target) && target[authEnd] == '/' {
		p := target[authEnd:]
		r.path = span{uint32(toff + authEnd), uint32(toff + authEnd + pathEnd(p))}
	}
	return NeedMore
}

// pathEnd returns the length of the path part of an origin-form target.
func pathEnd(t []byte) int {
	for i, c := range t {
		if c == '?' {
			return i
		}
	}
	return len(t)
}

// headerLine parses "name: value" and applies the rules on Host,
// Content-Length and Transfer-Encoding.
func (r *Request) headerLine(buf []byte, start, end int) Status {
	line := buf[start:end]
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !isToken(line[:colon]) {
		// Covers obs-fold too: SP and HTAB are not token characters.
		return Malformed
	}
	vs, ve := colon+1, len(line)
	for vs < ve && isOWS(line[vs]) {
		vs++
	}
	for ve > vs && isOWS(line[ve-1]) {
		ve--
	}
	value := line[vs:ve]
	for _, c := range value {
		if !fieldValueChars[c] {
			return Malformed
		}
	}
	if int(r.n) == MaxHeaders {
		return TooLarge
	}
	name := line[:colon]
	r.fields[r.n] = field{
		name:  span{uint32(start), uint32(start + colon)},
		value: span{uint32(start + vs), uint32(start + ve)},
	}
	r.n++
	switch {
	case equalFold(name, "host"):
		if r.hostSeen {
			return Malformed
		}
		r.hostSeen = true
		hostLen, ok := splitAuthority(value)
		if !ok {
			return Malformed
		}
		r.hostHeader = span{uint32(start + vs), uint32(start + vs + hostLen)}
	case equalFold(name, "content-length"):
		n, ok := parseContentLength(value)
		if !ok || r.chunked || (r.clSeen && n != r.cl) {
			return Malformed
		}
		r.clSeen, r.cl = true, n
	case equalFold(name, "transfer-encoding"):
		if r.minor == 0 || r.clSeen || r.chunked || !equalFold(value, "chunked") {
			return Malformed
		}
		r.chunked = true
	}
	return NeedMore
}

// finish checks the head as a whole once its empty line is in.
func (r *Request) finish() Status {
	if r.minor == 1 && !r.hostSeen {
		return Malformed
	}
	return Done
}

// HeadLen returns the length of the head, from the start of the buffer
// (empty lines before the request line included) to the end of the
// terminating empty line. It is valid after Done.
func (r *Request) HeadLen() int { return int(r.pos) }

// Method returns the request method.
func (r *Request) Method(buf []byte) []byte { return r.method.of(buf) }

// Target returns the request-target as sent.
func (r *Request) Target(buf []byte) []byte { return r.target.of(buf) }

// rootPath is the path of an absolute-form target with an empty path.
var rootPath = []byte{'/'}

// Path returns the path part of the target, without the query,
// as sent (no percent-decoding, no dot-segment removal). For an
// absolute-form target "http://h/p?q" it is "/p", and "/" when the target
// has no path (that slice is shared: do not modify it). For asterisk-form
// it is "*".
func (r *Request) Path(buf []byte) []byte {
	if r.absolute && r.path == (span{}) {
		return rootPath[:1:1]
	}
	return r.path.of(buf)
}

// Host returns the host the request is for, port stripped and case as
// sent: the authority of an absolute-form target, otherwise the Host
// header's value (empty if there is none). An IPv6 literal keeps its
// brackets.
func (r *Request) Host(buf []byte) []byte {
	if r.absolute {
		return r.hostAuth.of(buf)
	}
	return r.hostHeader.of(buf)
}

// Minor returns the minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
func (r *Request) Minor() int { return int(r.minor) }

// ContentLength returns the Content-Length of the request, and false when
// it has none.
func (r *Request) ContentLength() (int64, bool) { return r.cl, r.clSeen }

// Chunked reports whether the request body is chunked.
func (r *Request) Chunked() bool { return r.chunked }

// NumHeaders returns the number of header lines parsed.
func (r *Request) NumHeaders() int { return int(r.n) }

// HeaderAt returns the name and value (trimmed of OWS) of the i-th header
// line, 0 <= i < NumHeaders.
func (r *Request) HeaderAt(buf []byte, i int) (name, value []byte) {
	f := &r.fields[i]
	return f.name.of(buf), f.value.of(buf)
}

// Header returns the value of the first header named name (compared
// case-insensitively), trimmed of OWS.
func (r *Request) Header(buf []byte, name string) ([]byte, bool) {
	for i := range int(r.n) {
		f := &r.fields[i]
		if equalFold(f.name.of(buf), name) {
			return f.value.of(buf), true
		}
	}
	return nil, false
}

// Cookie returns the value of the first cookie called name (compared
// exactly) in the Cookie header lines, without surrounding double quotes.
// Pairs are separated by ";" with optional whitespace; pairs without "="
// are skipped.
func (r *Request) Cookie(buf []byte, name string) ([]byte, bool) {
	for i := range int(r.n) {
		f := &r.fields[i]
		if !equalFold(f.name.of(buf), "cookie") {
			continue
		}
		list := f.value.of(buf)
		for len(list) > 0 {
			pair := list
			if j := bytes.IndexByte(list, ';'); j >= 0 {
				pair, list = list[:j], list[j+1:]
			} else {
				list = nil
			}
			eq := bytes.IndexByte(pair, '=')
			if eq < 0 || string(trimOWS(pair[:eq])) != name {
				continue
			}
			v := trimOWS(pair[eq+1:])
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return nil, false
}

// parseContentLength parses 1*DIGIT, refusing values that do not fit.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > maxContentLengthDigits {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// splitAuthority validates host[":" port] (no userinfo) and returns the
// length of the host part. An empty authority is valid (length 0).
func splitAuthority(a []byte) (hostLen int, ok bool) {
	if len(a) > 0 && a[0] == '[' {
		i := 1
		for i < len(a) && isIPLiteral(a[i]) {
			i++
		}
		if i == 1 || i == len(a) || a[i] != ']' {
			return 0, false
		}
		hostLen = i + 1
	} else {
		for hostLen < len(a) && isRegName(a[hostLen]) {
			hostLen++
		}
	}
	if hostLen == len(a) {
		return hostLen, true
	}
	if hostLen == 0 {
		return 0, false // a port without a host
	}
	if a[hostLen] != ':' {
		return 0, false
	}
	for _, c := range a[hostLen+1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	return hostLen, len(a)-hostLen-1 <= 5
}

// Character classes.
var (
	tokenChars   = charTable("!#$%&'*+-.^_`|~" + digits + alphas)
	regNameChars = charTable("-._~!$&'()*+,;=" + digits + alphas)
	ipLitChars   = charTable(":." + digits + "abcdefABCDEF")
	// fieldValueChars: HTAB, visible ASCII, SP and obs-text.
	fieldValueChars = func() (t [256]bool) {
		for c := range 256 {
			t[c] = c == '\t' || (c >= ' ' && c != 0x7f)
		}
		return t
	}()
)

const (
	digits = "0123456789"
	alphas = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

func charTable(s string) (t [256]bool) {
	for i := range len(s) {
		t[s[i]] = true
	}
	return t
}

func isRegName(c byte) bool   { return regNameChars[c] }
func isHex(c byte) bool       { return ipLitChars[c] && c != ':' && c != '.' }
func isIPLiteral(c byte) bool { return ipLitChars[c] }
func isOWS(c byte) bool       { return c == ' ' || c == '\t' }

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// lower folds an ASCII upper-case letter.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals s ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether b starts with s ignoring ASCII case.
func hasPrefixFold(b []byte, s string) bool {
	return len(b) >= len(s) && equalFold(b[:len(s)], s)
}
