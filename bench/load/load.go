package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// defaultTimeout is the request timeout when Config.Timeout is 0.
const defaultTimeout = 10 * time.Second

// Config describes a load run. Requests that start during the warm-up,
// and the connections opened for them, are not counted; nor are requests
// still in progress when the run stops.
type Config struct {
	URLs        []string      // http://host[:port]/path; connection i uses URLs[i%len(URLs)]
	Connections int           // closed loop: concurrency; open loop: most connections at once
	Rate        float64       // requests/s over all connections; 0 = closed loop
	Duration    time.Duration // measured time
	Warmup      time.Duration // run before measuring, results discarded
	KeepAlive   bool          // false: a new TCP connection per request ("Connection: close")
	Timeout     time.Duration // per request, connect included; 0 = 10s
	Progress    io.Writer     // nil: none; else a live one-line status every second ("\r..."), for terminals
	// Dial opens connections; nil means a net.Dialer. Tests use in-memory
	// connections.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// targets checks c and prepares its URLs.
func (c *Config) targets() ([]target, error) {
	switch {
	case len(c.URLs) == 0:
		return nil, errors.New("load: no URL")
	case c.Connections < 1:
		return nil, fmt.Errorf("load: Connections must be at least 1, not %d", c.Connections)
	case c.Duration <= 0:
		return nil, fmt.Errorf("load: Duration must be positive, not %v", c.Duration)
	case c.Warmup < 0:
		return nil, fmt.Errorf("load: Warmup must not be negative, not %v", c.Warmup)
	case c.Timeout < 0:
		return nil, fmt.Errorf("load: Timeout must not be negative, not %v", c.Timeout)
	case !(c.Rate >= 0) || math.IsInf(c.Rate, 1):
		return nil, fmt.Errorf("load: Rate must be a finite number >= 0, not %v", c.Rate)
	}
	ts := make([]target, len(c.URLs))
	for i, u := range c.URLs {
		t, err := newTarget(u, c.KeepAlive)
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	return ts, nil
}

// Run generates load as cfg says until cfg.Warmup+cfg.Duration have passed
// or ctx is done, and returns what it measured (up to then, if ctx ended
// it). It returns an error only for a bad cfg.
func Run(ctx context.Context, cfg Config) (Result, error) {
	targets, err := cfg.targets()
	if err != nil {
		return Result{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &runner{cfg: cfg, ctx: runCtx, hist: newHistogram()}
	r.workers = make([]*worker, cfg.Connections)
	for i := range r.workers {
		r.workers[i] = &worker{r: r, c: newClient(runCtx, targets[i%len(targets)], &cfg), hist: newHistogram()}
	}
	r.start = time.Now()
	r.measureStart = r.start.Add(cfg.Warmup)

	var wg sync.WaitGroup
	if cfg.Rate > 0 {
		queue := make(chan time.Time, cfg.Connections)
		wg.Go(func() { r.schedule(queue) })
		for _, w := range r.workers {
			wg.Go(func() { w.openLoop(queue) })
		}
	} else {
		for _, w := range r.workers {
			wg.Go(w.closedLoop)
		}
	}
	var progress sync.WaitGroup
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		progress.Go(func() { r.progress(cfg.Progress, progressDone) })
	}

	end := time.NewTimer(cfg.Warmup + cfg.Duration)
	select {
	case <-end.C:
	case <-ctx.Done():
		end.Stop()
	}
	stopAt := time.Now()
	r.stopped.Store(true)
	cancel()
	for _, w := range r.workers {
		w.c.abort()
	}
	wg.Wait()
	close(progressDone)
	progress.Wait()
	return r.result(stopAt), nil
}

// runner is one run's shared state.
type runner struct {
	cfg          Config
	ctx          context.Context // done when the run stops
	start        time.Time
	measureStart time.Time // start + warm-up
	workers      []*worker
	stopped      atomic.Bool
	late         atomic.Uint64 // open loop: measured requests dropped for lack of a free worker

	// tick changes every second while Progress is set: each worker then
	// merges its histogram into hist after its next request, so that the
	// progress line can show a p99.
	tick atomic.Uint64
	mu   sync.Mutex // guards hist
	hist *hdr.Histogram
}

// worker is one connection's loop and its statistics. Only the worker's
// goroutine writes them; the atomics are read by the progress line.
type worker struct {
	r    *runner
	c    *client
	hist *hdr.Histogram
	tick uint64 // the runner's tick at the last merge

	ok   atomic.Uint64 // completed requests, warm-up included
	errs atomic.Uint64 // measured errors

	requests, connects, bodyBytes uint64
	errors                        [numKinds]uint64
}

// closedLoop sends requests back to back until the run stops.
func (w *worker) closedLoop() {
	defer w.c.close()
	for !w.r.stopped.Load() {
		w.request(time.Now())
	}
}

// openLoop takes the requests scheduled on queue, by their intended start
// time, until the run stops.
func (w *worker) openLoop(queue <-chan time.Time) {
	defer w.c.close()
	for {
		select {
		case intended := <-queue:
			w.request(intended)
		case <-w.r.ctx.Done():
			return
		}
	}
}

// request sends one request and records it, its latency counted from
// intended. In steady state with keep-alive it does not allocate.
func (w *worker) request(intended time.Time) {
	o := w.c.do(time.Now())
	latency := time.Since(intended)
	if o.kind == kindOK {
		w.ok.Add(1)
	}
	if o.kind == kindAborted || w.r.stopped.Load() || intended.Before(w.r.measureStart) {
		return
	}
	if o.connected {
		w.connects++
	}
	if o.kind != kindOK {
		w.errors[o.kind]++
		w.errs.Add(1)
		return
	}
	w.requests++
	w.bodyBytes += uint64(o.body)
	recordLatency(w.hist, latency)
	if t := w.r.tick.Load(); t != w.tick {
		w.tick = t
		w.flush()
	}
}

// flush moves the worker's latencies into the runner's histogram.
func (w *worker) flush() {
	w.r.mu.Lock()
	w.r.hist.Merge(w.hist)
	w.r.mu.Unlock()
	w.hist.Reset()
}

// schedule hands out the open loop's requests, one every 1/Rate from the
// start, to the workers through queue. When queue is full (every worker
// busy and as many requests waiting) the request is dropped and counted
// late: the schedule never waits for the server.
func (r *runner) schedule(queue chan<- time.Time) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := 0; ; i++ {
		intended := r.start.Add(time.Duration(float64(i) * float64(time.Second) / r.cfg.Rate))
		if d := time.Until(intended); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-r.ctx.Done():
				return
			}
		}
		if r.stopped.Load() {
			return
		}
		select {
		case queue <- intended:
		default:
			if !intended.Before(r.measureStart) {
				r.late.Add(1)
			}
		}
	}
}

// progress writes a status line to out every second until done is closed,
// then ends the line: time since the start ("warm-up" while the second
// was), completed requests/s over the last second (warm-up included),
// errors so far and the p99 so far (measured requests only).
func (r *runner) progress(out io.Writer, done <-chan struct{}) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	var prevOK uint64
	prevAt := r.start
	for {
		var now time.Time
		select {
		case <-done:
			fmt.Fprintln(out)
			return
		case now = <-ticker.C:
		}
		r.tick.Add(1)
		var ok, errs uint64
		for _, w := range r.workers {
			ok += w.ok.Load()
			errs += w.errs.Load()
		}
		p99 := "-"
		r.mu.Lock()
		if r.hist.TotalCount() > 0 {
			p99 = fmt.Sprintf("%.2f ms", float64(r.hist.ValueAtQuantile(99))/1e3)
		}
		r.mu.Unlock()
		phase := ""
		if prevAt.Before(r.measureStart) {
			phase = " warm-up"
		}
		fmt.Fprintf(out, "\r%5.0fs%s  %8.0f req/s  %d errors  p99 %s   ", now.Sub(r.start).Seconds(), phase,
			float64(ok-prevOK)/now.Sub(prevAt).Seconds(), errs, p99)
		prevOK, prevAt = ok, now
	}
}

// result adds up the workers' statistics; the workers have stopped.
func (r *runner) result(stopAt time.Time) Result {
	res := Result{
		URLs:        slices.Clone(r.cfg.URLs),
		Mode:        ModeClosed,
		KeepAlive:   r.cfg.KeepAlive,
		Connections: r.cfg.Connections,
		Rate:        r.cfg.Rate,
		Seconds:     max(stopAt.Sub(r.measureStart).Seconds(), 0),
	}
	if r.cfg.Rate > 0 {
		res.Mode = ModeOpen
	}
	var errs [numKinds]uint64
	errs[kindLate] = r.late.Load()
	for _, w := range r.workers {
		w.flush()
		res.Requests += w.requests
		res.Connects += w.connects
		res.BodyBytes += w.bodyBytes
		for k, n := range w.errors {
			errs[k] += n
		}
	}
	for k, n := range errs {
		if n > 0 {
			if res.Errors == nil {
				res.Errors = map[string]uint64{}
			}
			res.Errors[kindNames[k]] = n
		}
	}
	if res.Seconds > 0 {
		res.RPS = float64(res.Requests) / res.Seconds
		res.MBps = float64(res.BodyBytes) / res.Seconds / 1e6
	}
	res.Latency = latencyOf(r.hist)
	return res
}
