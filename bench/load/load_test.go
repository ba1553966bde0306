package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memListener is an in-memory network: each Dial makes a net.Pipe and
// Accept returns its server end.
type memListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *memListener) Addr() net.Addr { return fakeAddr{} }

// Dial is a Config.Dial.
func (l *memListener) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// serve serves h on an in-memory network until the test ends and returns
// its Dial function.
func serve(t *testing.T, h http.HandlerFunc) func(context.Context, string, string) (net.Conn, error) {
	l := newMemListener()
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Dial
}

// run runs cfg and fails the test on a Config error.
func run(t *testing.T, cfg Config) Result {
	t.Helper()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	return res
}

// checkSums checks the figures of res that follow from the others.
func checkSums(t *testing.T, res Result, cfg Config) {
	t.Helper()
	if res.Seconds < cfg.Duration.Seconds() || res.Seconds > cfg.Duration.Seconds()+10 {
		t.Errorf("Seconds %v, want about %v", res.Seconds, cfg.Duration.Seconds())
	}
	if math.Abs(res.RPS-float64(res.Requests)/res.Seconds) > 1e-9 || math.Abs(res.MBps-float64(res.BodyBytes)/res.Seconds/1e6) > 1e-9 {
		t.Errorf("RPS %v, MBps %v do not follow from %d requests, %d bytes in %v s", res.RPS, res.MBps, res.Requests, res.BodyBytes, res.Seconds)
	}
	l := res.Latency
	if res.Requests > 0 && !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max && l.Mean <= l.Max) {
		t.Errorf("latency %+v is not ordered", l)
	}
	if !slices.Equal(res.URLs, cfg.URLs) || res.KeepAlive != cfg.KeepAlive || res.Connections != cfg.Connections || res.Rate != cfg.Rate {
		t.Errorf("result %+v does not repeat config %+v", res, cfg)
	}
}

func TestRunCounts(t *testing.T) {
	const size = 50_000
	body := bytes.Repeat([]byte("x"), size)
	tests := []struct {
		name         string
		keepAlive    bool
		handler      func(w http.ResponseWriter, r *http.Request)
		connPerReq   bool // Connects == Requests, else == Connections
		wantClosings bool // every request has "Connection: close"
	}{
		{name: "content-length", keepAlive: true, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(body)
		}},
		{name: "chunked", keepAlive: true, handler: func(w http.ResponseWriter, r *http.Request) {
			for part := range slices.Chunk(body, size/5) {
				w.Write(part)
				w.(http.Flusher).Flush()
			}
		}},
		{name: "connection per request", connPerReq: true, wantClosings: true, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write(body)
		}},
		{name: "server closes", keepAlive: true, connPerReq: true, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			w.Write(body)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var served, closings atomic.Uint64
			dial := serve(t, func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				if r.Close {
					closings.Add(1)
				}
				tt.handler(w, r)
			})
			cfg := Config{URLs: []string{"http://test/"}, Connections: 3, Duration: 200 * time.Millisecond, KeepAlive: tt.keepAlive, Dial: dial}
			res := run(t, cfg)
			checkSums(t, res, cfg)
			if res.Requests == 0 || res.Errors != nil || res.BodyBytes != res.Requests*size || res.Mode != ModeClosed {
				t.Errorf("%d requests, errors %v, %d body bytes, mode %s; want some, none, %d bytes each, closed",
					res.Requests, res.Errors, res.BodyBytes, res.Mode, size)
			}
			// Requests in progress at the end reached the server but are not counted.
			if n := served.Load(); n < res.Requests || n > res.Requests+uint64(cfg.Connections) {
				t.Errorf("server served %d requests, result counts %d", n, res.Requests)
			}
			wantConnects := uint64(cfg.Connections)
			if tt.connPerReq {
				wantConnects = res.Requests
			}
			if res.Connects != wantConnects {
				t.Errorf("%d connects, want %d", res.Connects, wantConnects)
			}
			wantClosings := uint64(0)
			if tt.wantClosings {
				wantClosings = served.Load()
			}
			if closings.Load() != wantClosings {
				t.Errorf("%d of %d requests had Connection: close, want %d", closings.Load(), served.Load(), wantClosings)
			}
		})
	}
}

func TestRunURLs(t *testing.T) {
	var mu sync.Mutex
	addrs, requests := map[string]bool{}, map[string]bool{}
	dial := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests[r.Host+r.RequestURI] = true
		mu.Unlock()
	})
	cfg := Config{
		URLs:        []string{"http://a.test/a", "http://b.test:8080/b?x=1"},
		Connections: 4,
		Duration:    100 * time.Millisecond,
		KeepAlive:   true,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			addrs[network+" "+addr] = true
			mu.Unlock()
			return dial(ctx, network, addr)
		},
	}
	res := run(t, cfg)
	checkSums(t, res, cfg)
	mu.Lock() // the server may still be answering an aborted request
	defer mu.Unlock()
	if got, want := slices.Sorted(maps.Keys(addrs)), []string{"tcp a.test:80", "tcp b.test:8080"}; !slices.Equal(got, want) {
		t.Errorf("dialled %q, want %q", got, want)
	}
	if got, want := slices.Sorted(maps.Keys(requests)), []string{"a.test/a", "b.test:8080/b?x=1"}; !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestRunWarmup(t *testing.T) {
	var served atomic.Uint64
	dial := serve(t, func(w http.ResponseWriter, r *http.Request) { served.Add(1) })
	cfg := Config{URLs: []string{"http://test/"}, Connections: 2, Duration: 200 * time.Millisecond, Warmup: 200 * time.Millisecond, KeepAlive: true, Dial: dial}
	res := run(t, cfg)
	checkSums(t, res, cfg)
	// The connections were opened, and some requests made, during the warm-up.
	if res.Requests == 0 || res.Connects != 0 || served.Load() <= res.Requests+uint64(cfg.Connections) {
		t.Errorf("%d requests, %d connects, %d served; want the warm-up's connects and requests left out", res.Requests, res.Connects, served.Load())
	}
}

func TestRunErrors(t *testing.T) {
	hijack := func(resp string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			buf.WriteString(resp)
			buf.Flush()
			conn.Close()
		}
	}
	tests := []struct {
		kind    string
		handler http.HandlerFunc
		dial    func(context.Context, string, string) (net.Conn, error)
		timeout time.Duration
	}{
		{kind: ErrConnect, dial: func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("connection refused") }},
		{kind: ErrWrite, dial: func(context.Context, string, string) (net.Conn, error) {
			return &fakeConn{writeErr: errors.New("broken pipe")}, nil
		}},
		{kind: ErrTimeout, timeout: 20 * time.Millisecond, handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
		{kind: ErrStatus, handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", http.StatusInternalServerError) }},
		{kind: ErrShortBody, handler: hijack("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")},
		{kind: ErrRead, handler: hijack("")},
		{kind: ErrParse, handler: hijack("nonsense\r\n\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			dial := tt.dial
			if dial == nil {
				dial = serve(t, tt.handler)
			}
			cfg := Config{URLs: []string{"http://test/"}, Connections: 2, Duration: 200 * time.Millisecond, KeepAlive: true,
				Timeout: tt.timeout, Dial: dial}
			res := run(t, cfg)
			checkSums(t, res, cfg)
			if res.Requests != 0 || len(res.Errors) != 1 || res.Errors[tt.kind] == 0 || res.Latency != (Latency{}) {
				t.Errorf("%d requests, errors %v, latency %+v; want only %s errors", res.Requests, res.Errors, res.Latency, tt.kind)
			}
		})
	}
}

func TestRunCancel(t *testing.T) {
	dial := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{URLs: []string{"http://test/"}, Connections: 2, Duration: time.Hour, KeepAlive: true, Timeout: time.Hour, Dial: dial})
	// The requests stalled in progress are cut short and not counted.
	if err != nil || res.Requests != 0 || res.Errors != nil || res.Seconds < 0.05 || res.Seconds > 30 || time.Since(start) > 30*time.Second {
		t.Errorf("Run cancelled after 100 ms: %+v, %v, took %v", res, err, time.Since(start))
	}
}

func TestOpenLoopStall(t *testing.T) {
	// The server stalls once, for everyone, for 300 ms. In an open loop the
	// requests scheduled during the stall wait (or are dropped as late),
	// and their latency counts from when they were due.
	var mu sync.Mutex
	var n atomic.Int64
	dial := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if n.Add(1) == 10 {
			time.Sleep(300 * time.Millisecond)
		}
		mu.Unlock()
	})
	var progress bytes.Buffer
	cfg := Config{URLs: []string{"http://test/"}, Connections: 4, Rate: 100, Duration: 1200 * time.Millisecond, KeepAlive: true,
		Progress: &progress, Dial: dial}
	res := run(t, cfg)
	checkSums(t, res, cfg)
	// At least the 3 requests waiting for the server and the 4 queued
	// behind them were due 230-300 ms before they ended: more than 1%.
	if res.Mode != ModeOpen || res.Requests == 0 || res.Latency.Max < 299 || res.Latency.P99 < 200 {
		t.Errorf("mode %s, %d requests, latency %+v; want a max of at least 300 ms and p99 of at least 200 ms", res.Mode, res.Requests, res.Latency)
	}
	if late := res.Errors[ErrLate]; res.Requests+late > uint64(cfg.Rate*res.Seconds)+2 {
		t.Errorf("%d requests and %d late in %v s at %v/s: more than scheduled", res.Requests, late, res.Seconds, cfg.Rate)
	}
	if p := progress.String(); !strings.HasPrefix(p, "\r") || !strings.Contains(p, " req/s ") || !strings.Contains(p, " p99 ") || !strings.HasSuffix(p, "\n") {
		t.Errorf("progress output %q, want status lines starting with \\r and a final newline", p)
	}
}

func TestOpenLoopLate(t *testing.T) {
	dial := serve(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(20 * time.Millisecond) })
	cfg := Config{URLs: []string{"http://test/"}, Connections: 1, Rate: 200, Duration: 500 * time.Millisecond, KeepAlive: true, Dial: dial}
	res := run(t, cfg)
	checkSums(t, res, cfg)
	late := res.Errors[ErrLate]
	if res.Requests == 0 || late == 0 || len(res.Errors) != 1 || res.Requests+late > uint64(cfg.Rate*res.Seconds)+2 {
		t.Errorf("%d requests, errors %v in %v s at %v/s; want some late", res.Requests, res.Errors, res.Seconds, cfg.Rate)
	}
}

func TestConfigErrors(t *testing.T) {
	good := Config{URLs: []string{"http://test/"}, Connections: 1, Duration: time.Second,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			t.Error("a bad Config dialled")
			return nil, errors.New("no dial")
		}}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no URL", func(c *Config) { c.URLs = nil }, "no URL"},
		{"https", func(c *Config) { c.URLs = []string{"http://a/", "https://b/"} }, "only http://"},
		{"no connections", func(c *Config) { c.Connections = 0 }, "Connections"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "Duration"},
		{"negative warm-up", func(c *Config) { c.Warmup = -time.Second }, "Warmup"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "Timeout"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "Rate"},
		{"NaN rate", func(c *Config) { c.Rate = math.NaN() }, "Rate"},
		{"infinite rate", func(c *Config) { c.Rate = math.Inf(1) }, "Rate"},
	}
	for _, tt := range tests {
		cfg := good
		tt.change(&cfg)
		if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestLatencyHistogram(t *testing.T) {
	// Two workers recorded 1, 2, ..., 1000 ms between them, plus values
	// out of range; the run merges their histograms.
	r := &runner{hist: newHistogram()}
	workers := []*worker{{r: r, hist: newHistogram()}, {r: r, hist: newHistogram()}}
	for i := 1; i <= 1000; i++ {
		recordLatency(workers[i%2].hist, time.Duration(i)*time.Millisecond)
	}
	for _, w := range workers {
		w.flush()
		if w.hist.TotalCount() != 0 {
			t.Errorf("worker histogram not reset after the merge")
		}
	}
	want := Latency{P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000, Mean: 500.5}
	got := latencyOf(r.hist)
	for _, v := range [][2]float64{{got.P50, want.P50}, {got.P90, want.P90}, {got.P99, want.P99}, {got.P999, want.P999}, {got.Max, want.Max}, {got.Mean, want.Mean}} {
		if math.Abs(v[0]-v[1]) > v[1]*1e-3 { // 3 significant digits
			t.Errorf("latency %+v, want %+v", got, want)
			break
		}
	}

	h := newHistogram()
	recordLatency(h, 0)
	recordLatency(h, 2*time.Minute)
	if got := latencyOf(h); got.P50 != 0.001 || math.Abs(got.Max-60_000) > 60 {
		t.Errorf("out of range latencies: %+v, want them clamped to 1 µs and 60 s", got)
	}
	if got := latencyOf(newHistogram()); got != (Latency{}) {
		t.Errorf("empty histogram: %+v", got)
	}
}

func TestResultJSON(t *testing.T) {
	res := Result{URLs: []string{"http://test/"}, Mode: ModeOpen, KeepAlive: true, Connections: 1, Rate: 10, Seconds: 1,
		Requests: 1, Errors: map[string]uint64{ErrLate: 1}, Connects: 1, BodyBytes: 1, RPS: 1, MBps: 1,
		Latency: Latency{P50: 1, P90: 1, P99: 1, P999: 1, Max: 1, Mean: 1}}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"body_bytes", "connections", "connects", "errors", "keep_alive", "latency_ms", "mbps", "mode", "rate", "requests", "rps", "seconds", "urls"}
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, want) {
		t.Errorf("JSON keys %q, want %q", got, want)
	}
	wantLatency := []string{"max", "mean", "p50", "p90", "p99", "p99_9"}
	if got := slices.Sorted(maps.Keys(m["latency_ms"].(map[string]any))); !slices.Equal(got, wantLatency) {
		t.Errorf("latency_ms keys %q, want %q", got, wantLatency)
	}
	if got := m["errors"].(map[string]any)[ErrLate]; got != 1.0 {
		t.Errorf("errors.late = %v, want 1", got)
	}
}
