package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// bufSize is the size of a client's read buffer: response heads and
// discarded bodies go through it. A header line must fit in it.
const bufSize = 64 << 10

// kind is the outcome of one request: kindOK or an error kind.
type kind uint8

// Outcomes of a request. The error kinds index Result.Errors through
// kindNames.
const (
	kindOK kind = iota
	kindConnect
	kindTimeout
	kindWrite
	kindRead
	kindParse
	kindStatus
	kindShortBody
	kindLate
	// kindAborted is a request cut short because the run stopped; it is
	// never counted.
	kindAborted
	numKinds
)

// kindNames are the Result.Errors keys of the error kinds.
var kindNames = [numKinds]string{
	kindConnect:   ErrConnect,
	kindTimeout:   ErrTimeout,
	kindWrite:     ErrWrite,
	kindRead:      ErrRead,
	kindParse:     ErrParse,
	kindStatus:    ErrStatus,
	kindShortBody: ErrShortBody,
	kindLate:      ErrLate,
}

// errMalformed reports a response that breaks HTTP/1.1 framing: a bad chunk
// size or a line longer than the read buffer.
var errMalformed = errors.New("load: malformed response")

// target is one URL prepared for the client.
type target struct {
	addr string // host:port to dial
	req  []byte // the whole GET request
}

// newTarget parses an http:// URL and builds its request; keepAlive false
// adds "Connection: close".
func newTarget(raw string, keepAlive bool) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("load: %w", err)
	}
	if u.Scheme != "http" {
		return target{}, fmt.Errorf("load: URL %q: only http:// is supported", raw)
	}
	if u.Hostname() == "" {
		return target{}, fmt.Errorf("load: URL %q: no host", raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: wsbench\r\n"
	if !keepAlive {
		req += "Connection: close\r\n"
	}
	return target{addr: net.JoinHostPort(u.Hostname(), port), req: []byte(req + "\r\n")}, nil
}

// outcome is what one request came to.
type outcome struct {
	kind      kind
	body      int64 // body bytes of a completed request
	connected bool  // the request opened a new connection
}

// client is one connection's HTTP/1.1 client. It sends the same GET again
// and again, on one keep-alive connection or a new connection each time,
// and reads each response into its buffer, counting the body bytes. Only
// abort may be called from another goroutine.
type client struct {
	target
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	ctx       context.Context // bounds dials; cancelled when the run stops
	keepAlive bool
	timeout   time.Duration

	mu      sync.Mutex // guards conn against abort; the owner reads it freely
	conn    net.Conn   // nil between connections
	aborted atomic.Bool

	buf  []byte
	r, w int // unread bytes are buf[r:w]
}

// newClient returns a client for t.
func newClient(ctx context.Context, t target, cfg *Config) *client {
	c := &client{
		target:    t,
		dial:      cfg.Dial,
		ctx:       ctx,
		keepAlive: cfg.KeepAlive,
		timeout:   cfg.Timeout,
		buf:       make([]byte, bufSize),
	}
	if c.dial == nil {
		c.dial = (&net.Dialer{}).DialContext
	}
	if c.timeout == 0 {
		c.timeout = defaultTimeout
	}
	return c
}

// do sends one request, started at start, and reads its response. The
// timeout runs from start and includes the connect.
func (c *client) do(start time.Time) outcome {
	var o outcome
	deadline := start.Add(c.timeout)
	if c.conn == nil {
		if o.kind = c.connect(deadline); o.kind != kindOK {
			return o
		}
		o.connected = true
	}
	c.conn.SetDeadline(deadline)
	// abort sets aborted before its deadline in the past: if the line
	// above replaced that deadline, aborted is already visible here.
	if c.aborted.Load() {
		c.close()
		o.kind = kindAborted
		return o
	}
	if _, err := c.conn.Write(c.req); err != nil {
		o.kind = c.fail(err, kindWrite)
		return o
	}
	o.kind, o.body = c.readResponse()
	return o
}

// connect opens the connection.
func (c *client) connect(deadline time.Time) kind {
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	conn, err := c.dial(ctx, "tcp", c.addr)
	cancel()
	switch {
	case c.aborted.Load():
		if err == nil {
			conn.Close()
		}
		return kindAborted
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return kindTimeout
	case err != nil:
		return kindConnect
	}
	c.mu.Lock()
	c.conn = conn
	c.r, c.w = 0, 0
	c.mu.Unlock()
	return kindOK
}

// close closes the connection, if any.
func (c *client) close() {
	if c.conn == nil {
		return
	}
	c.mu.Lock()
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	conn.Close()
}

// abort makes the request in progress, and every later one, end at once
// with kindAborted (or an error, if it was already failing).
func (c *client) abort() {
	c.aborted.Store(true)
	c.mu.Lock()
	if c.conn != nil {
		c.conn.SetDeadline(time.Unix(1, 0))
	}
	c.mu.Unlock()
}

// fail closes the connection after err and returns its kind: kindAborted
// if the run stopped, kindParse for errMalformed, kindTimeout, else other.
func (c *client) fail(err error, other kind) kind {
	return c.failEOF(err, other, other)
}

// failEOF is fail with eofKind for an early end of the stream (io.EOF,
// io.ErrUnexpectedEOF).
func (c *client) failEOF(err error, eofKind, other kind) kind {
	c.close()
	switch {
	case c.aborted.Load():
		return kindAborted
	case err == errMalformed:
		return kindParse
	case isTimeout(err):
		return kindTimeout
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return eofKind
	}
	return other
}

// isTimeout reports whether err is a deadline or timeout error.
func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// readResponse reads a response head and its body. It closes the
// connection after an error or when the response or the client asks for it.
func (c *client) readResponse() (kind, int64) {
	line, err := c.line()
	if err != nil {
		return c.fail(err, kindRead), 0
	}
	status, http10, ok := parseStatusLine(line)
	if !ok {
		c.close()
		return kindParse, 0
	}
	keep := c.keepAlive && !http10
	length := int64(-1)
	var hasTE, chunked bool
	for {
		if line, err = c.line(); err != nil {
			return c.fail(err, kindRead), 0
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // obsolete line folding: part of a header we ignore
		}
		name, value, ok := splitHeader(line)
		if !ok {
			c.close()
			return kindParse, 0
		}
		switch {
		case equalFold(name, "content-length"):
			n, ok := parseDecimal(value)
			if !ok || length >= 0 && n != length {
				c.close()
				return kindParse, 0
			}
			length = n
		case equalFold(name, "transfer-encoding"):
			hasTE = true
			chunked = lastToken(value, "chunked")
		case equalFold(name, "connection"):
			if hasToken(value, "close") {
				keep = false
			} else if http10 && hasToken(value, "keep-alive") {
				keep = c.keepAlive
			}
		}
	}
	var body int64
	switch {
	case status < 200:
		keep = false // 1xx: the final response would follow; not expected for a GET
	case status == 204 || status == 304:
	case chunked:
		body, err = c.chunked()
	case length >= 0 && !hasTE:
		body, err = length, c.discard(length)
	default:
		body, err = c.untilEOF()
		keep = false
	}
	if err != nil {
		return c.failEOF(err, kindShortBody, kindRead), 0
	}
	if !keep {
		c.close()
	}
	if status/100 != 2 {
		return kindStatus, 0
	}
	return kindOK, body
}

// fill reads more of the response into the buffer, first moving the unread
// bytes to its start.
func (c *client) fill() error {
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	if c.w == len(c.buf) {
		return errMalformed
	}
	n, err := c.conn.Read(c.buf[c.w:])
	c.w += n
	switch {
	case n > 0:
		return nil
	case err != nil:
		return err
	}
	return io.ErrNoProgress
}

// line returns the next line without its line ending; it stays valid until
// the next read.
func (c *client) line() ([]byte, error) {
	for {
		if i := bytes.IndexByte(c.buf[c.r:c.w], '\n'); i >= 0 {
			line := c.buf[c.r : c.r+i]
			c.r += i + 1
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, nil
		}
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
}

// discard skips n body bytes.
func (c *client) discard(n int64) error {
	for n > 0 {
		if c.r == c.w {
			c.r, c.w = 0, 0
			if err := c.fill(); err != nil {
				return err
			}
		}
		k := min(n, int64(c.w-c.r))
		c.r += int(k)
		n -= k
	}
	return nil
}

// chunked skips a chunked body and its trailer and returns the body size.
func (c *client) chunked() (int64, error) {
	var total int64
	for {
		line, err := c.line()
		if err != nil {
			return 0, err
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return 0, errMalformed
		}
		if size == 0 {
			break
		}
		if err := c.discard(size); err != nil {
			return 0, err
		}
		total += size
		if line, err = c.line(); err != nil {
			return 0, err
		} else if len(line) != 0 {
			return 0, errMalformed
		}
	}
	for { // trailer
		line, err := c.line()
		if err != nil {
			return 0, err
		}
		if len(line) == 0 {
			return total, nil
		}
	}
}

// untilEOF skips a body that the server ends by closing the connection.
func (c *client) untilEOF() (int64, error) {
	var total int64
	for {
		total += int64(c.w - c.r)
		c.r, c.w = 0, 0
		if err := c.fill(); err == io.EOF {
			return total, nil
		} else if err != nil {
			return 0, err
		}
	}
}

// parseStatusLine parses "HTTP/1.x NNN reason".
func parseStatusLine(line []byte) (status int, http10, ok bool) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return 0, false, false
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, false, false
		}
		status = status*10 + int(d-'0')
	}
	return status, line[7] == '0', status >= 100
}

// splitHeader splits "Name: value" and trims the value.
func splitHeader(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	return line[:i], trimSpace(line[i+1:]), true
}

// trimSpace removes spaces and tabs around b.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals the lower-case ASCII s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, x := range b {
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != s[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds token.
func hasToken(v []byte, token string) bool {
	for {
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			return equalFold(trimSpace(v), token)
		}
		if equalFold(trimSpace(v[:i]), token) {
			return true
		}
		v = v[i+1:]
	}
}

// lastToken reports whether the comma-separated list v ends with token.
func lastToken(v []byte, token string) bool {
	return equalFold(trimSpace(v[bytes.LastIndexByte(v, ',')+1:]), token)
}

// parseDecimal parses a Content-Length value.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// parseChunkSize parses a chunk-size line, ignoring chunk extensions.
func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = trimSpace(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, d := range line {
		switch {
		case '0' <= d && d <= '9':
			d -= '0'
		case 'a' <= d && d <= 'f':
			d -= 'a' - 10
		case 'A' <= d && d <= 'F':
			d -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}
