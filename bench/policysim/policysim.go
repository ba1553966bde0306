// Package policysim compares the switch's balancing policies (l7.Picker)
// on a synthetic trace, by deterministic discrete-event simulation.
//
// The model:
//   - The trace is Requests draws of URL ranks 0..URLs-1 from a Zipf law of
//     exponent Zipf (the probability of rank r is proportional to
//     1/(r+1)^Zipf; 0 is uniform), from a PCG generator seeded with Seed.
//     Every policy sees the same trace; URL r's key (the path LARD and the
//     hashing policies use) is "/u/r".
//   - Clients connections form a closed loop: each issues its next request
//     of the trace the moment its previous one completes, so Clients
//     requests are always outstanding and load matters.
//   - The request goes to the back-end the policy picks, with load(b) the
//     back-end's outstanding requests and every back-end up. With Shards
//     above 1, request k is picked by shard k mod Shards, each with its own
//     picker of the one pool, as in the switch.
//   - Each of the Backends back-ends has an LRU cache of Cache objects and
//     one FIFO server: a request whose URL is cached (a hit) takes HitTime,
//     any other (a miss, which then caches the URL, evicting the least
//     recently used) takes MissTime. The cache is updated when the request
//     is queued: requests are served in queue order, so the hits and
//     misses are those of service order.
//
// The first Warmup requests fill the caches and are not measured; the
// measurement window runs from the issue of request Warmup to the issue of
// the last request, the closed loop's steady state.
package policysim

import (
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"webswitch/l7"
)

// Config is a simulation's trace, back-ends and policy parameters. Zero
// fields but Zipf take the defaults of [Config.Defaults].
type Config struct {
	URLs     int     // distinct URLs
	Zipf     float64 // exponent s of the URLs' Zipf law; 0 is uniform (DefaultZipf is the command's default)
	Requests int     // length of the trace
	Warmup   int     // first requests not measured; default Requests/10
	Seed     uint64

	Backends int
	Cache    int // objects in each back-end's LRU cache; -1: none
	Clients  int // concurrent connections of the closed loop
	Shards   int // pickers, each taking every Shards-th request
	HitTime  time.Duration
	MissTime time.Duration

	// Pool parameters of the policies (l7.Pool), 0 for l7's defaults.
	LoadFactor        float64
	LARDLow, LARDHigh int64
	LARDTargets       int
}

// Defaults of Config: the comparison of docs/policies.md.
const (
	DefaultURLs     = 100_000
	DefaultZipf     = 1.0
	DefaultRequests = 1_000_000
	DefaultSeed     = 1
	DefaultBackends = 4
	DefaultCache    = 5_000
	DefaultClients  = 32
	DefaultShards   = 1
	DefaultHitTime  = 100 * time.Microsecond
	DefaultMissTime = 2 * time.Millisecond
)

// Defaults returns c with its zero fields but Zipf set to their defaults.
func (c Config) Defaults() Config {
	c.URLs = cmp.Or(c.URLs, DefaultURLs)
	c.Requests = cmp.Or(c.Requests, DefaultRequests)
	c.Warmup = cmp.Or(c.Warmup, c.Requests/10)
	c.Seed = cmp.Or(c.Seed, DefaultSeed)
	c.Backends = cmp.Or(c.Backends, DefaultBackends)
	c.Cache = cmp.Or(c.Cache, DefaultCache)
	c.Clients = cmp.Or(c.Clients, DefaultClients)
	c.Shards = cmp.Or(c.Shards, DefaultShards)
	c.HitTime = cmp.Or(c.HitTime, DefaultHitTime)
	c.MissTime = cmp.Or(c.MissTime, DefaultMissTime)
	return c
}

// ErrConfig reports a configuration that cannot be simulated.
var ErrConfig = errors.New("policysim: URLs, Requests, Backends, Clients and Shards must be positive, " +
	"Warmup below Requests, Cache at least -1, Zipf at least 0, times positive")

// validate checks a configuration with its defaults set.
func (c *Config) validate() error {
	if c.URLs < 1 || c.URLs > math.MaxInt32 || c.Requests < 1 || c.Warmup < 0 || c.Warmup >= c.Requests ||
		c.Backends < 1 || c.Clients < 1 || c.Shards < 1 || c.Cache < -1 ||
		!(c.Zipf >= 0) || math.IsInf(c.Zipf, 0) || c.HitTime <= 0 || c.MissTime <= 0 {
		return ErrConfig
	}
	return nil
}

// pool returns the l7 pool of back-ends 0..Backends-1 under policy pol,
// with a target table of its own.
func (c *Config) pool(pol l7.Policy) *l7.Pool {
	p := &l7.Pool{Name: pol.String(), Policy: pol, LoadFactor: c.LoadFactor,
		LARDLow: c.LARDLow, LARDHigh: c.LARDHigh, LARDTargets: c.LARDTargets, Targets: new(l7.Targets)}
	for b := range c.Backends {
		p.Backends = append(p.Backends, b)
	}
	return p
}

// Result is one policy's figures over the measurement window.
type Result struct {
	Policy   string
	Requests int     // measured
	HitRate  float64 // of the measured requests, 0 to 1
	// PerBackend is the measured requests per back-end; RequestsMaxMean
	// the largest of them over their mean.
	PerBackend      []int
	RequestsMaxMean float64
	// OutstandingMaxMean is the time average of the largest back-end's
	// outstanding requests over the mean (Clients/Backends).
	OutstandingMaxMean float64
	Throughput         float64 // requests completed per simulated second in the window
	MeanResponse       time.Duration
	P99Response        time.Duration
}

// Compare simulates each policy on the same trace, concurrently, and
// returns the results in the order of policies.
func Compare(cfg Config, policies []l7.Policy) ([]Result, error) {
	cfg = cfg.Defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for _, pol := range policies {
		if err := cfg.pool(pol).Validate(); err != nil {
			return nil, err
		}
	}
	trace := makeTrace(&cfg)
	out := make([]Result, len(policies))
	done := make(chan struct{})
	for i, pol := range policies {
		go func() {
			out[i] = run(&cfg, trace, pol)
			done <- struct{}{}
		}()
	}
	for range policies {
		<-done
	}
	return out, nil
}

// makeTrace draws the trace's URL ranks.
func makeTrace(cfg *Config) []int32 {
	cdf := make([]float64, cfg.URLs)
	sum := 0.0
	for r := range cdf {
		sum += math.Pow(float64(r+1), -cfg.Zipf)
		cdf[r] = sum
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5EED))
	trace := make([]int32, cfg.Requests)
	for k := range trace {
		r, _ := slices.BinarySearch(cdf, rng.Float64()*sum)
		trace[k] = int32(min(r, cfg.URLs-1))
	}
	return trace
}

// job is a request queued at a back-end.
type job struct {
	done, issued time.Duration
	measured     bool
}

// sim is the state of one run.
type sim struct {
	cfg     *Config
	trace   []int32
	pickers []l7.Picker
	caches  []lru
	queues  [][]job // FIFO per back-end; the head is being served
	busy    []time.Duration
	out     []int64 // outstanding requests per back-end
	key     []byte
	load    func(int) int64
	up      func(int) bool

	// Measurement window.
	start, end time.Duration
	hits       int
	completed  int             // requests completed in the window
	responses  []time.Duration // of the measured requests
	perBackend []int
	maxOutArea float64 // integral over the window of the largest outstanding count
}

// run simulates one policy.
func run(cfg *Config, trace []int32, pol l7.Policy) Result {
	s := &sim{
		cfg: cfg, trace: trace, caches: make([]lru, cfg.Backends), queues: make([][]job, cfg.Backends),
		busy: make([]time.Duration, cfg.Backends), out: make([]int64, cfg.Backends),
		perBackend: make([]int, cfg.Backends), responses: make([]time.Duration, 0, len(trace)-cfg.Warmup),
		start: -1, end: -1,
	}
	pool := cfg.pool(pol)
	for range cfg.Shards {
		s.pickers = append(s.pickers, l7.NewPicker(pool))
	}
	for b := range s.caches {
		s.caches[b] = newLRU(cfg.URLs, cfg.Cache)
	}
	s.load = func(b int) int64 { return s.out[b] }
	s.up = func(int) bool { return true }

	next := 0
	for ; next < min(cfg.Clients, len(trace)); next++ {
		s.issue(next, 0)
	}
	last := time.Duration(0)
	for {
		b := s.nextDone()
		if b < 0 {
			break
		}
		j := s.queues[b][0]
		// Events start and end the window, so the span since the last
		// event is all in it or all out of it.
		if s.start >= 0 && last >= s.start && (s.end < 0 || last < s.end) {
			s.maxOutArea += float64(j.done-last) * float64(slices.Max(s.out))
			s.completed++
		}
		last = j.done
		s.queues[b] = s.queues[b][1:]
		s.out[b]--
		if j.measured {
			s.responses = append(s.responses, j.done-j.issued)
		}
		if next < len(trace) {
			s.issue(next, j.done)
			next++
		}
	}
	return s.result(pol)
}

// issue sends request k at time now to the back-end its picker chooses.
func (s *sim) issue(k int, now time.Duration) {
	if k == s.cfg.Warmup {
		s.start = now
	}
	if k == len(s.trace)-1 {
		s.end = now
	}
	url := s.trace[k]
	s.key = strconv.AppendInt(append(s.key[:0], "/u/"...), int64(url), 10)
	b, _ := s.pickers[k%len(s.pickers)].Pick(s.key, s.load, s.up) // all up: ok
	service := s.cfg.MissTime
	hit := s.caches[b].access(url)
	if hit {
		service = s.cfg.HitTime
	}
	s.busy[b] = max(s.busy[b], now) + service
	measured := k >= s.cfg.Warmup
	s.queues[b] = append(s.queues[b], job{done: s.busy[b], issued: now, measured: measured})
	s.out[b]++
	if measured {
		s.perBackend[b]++
		if hit {
			s.hits++
		}
	}
}

// nextDone returns the back-end whose request completes first, or -1 when
// none is outstanding.
func (s *sim) nextDone() int {
	best := -1
	for b, q := range s.queues {
		if len(q) > 0 && (best < 0 || q[0].done < s.queues[best][0].done) {
			best = b
		}
	}
	return best
}

func (s *sim) result(pol l7.Policy) Result {
	n := len(s.trace) - s.cfg.Warmup
	r := Result{Policy: pol.String(), Requests: n, HitRate: float64(s.hits) / float64(n), PerBackend: s.perBackend}
	r.RequestsMaxMean = float64(slices.Max(s.perBackend)) * float64(s.cfg.Backends) / float64(n)
	if d := s.end - s.start; d > 0 {
		mean := float64(min(s.cfg.Clients, len(s.trace))) / float64(s.cfg.Backends)
		r.OutstandingMaxMean = s.maxOutArea / float64(d) / mean
		r.Throughput = float64(s.completed) / d.Seconds()
	}
	var sum time.Duration
	for _, d := range s.responses {
		sum += d
	}
	r.MeanResponse = sum / time.Duration(n)
	slices.Sort(s.responses)
	r.P99Response = s.responses[(n-1)*99/100]
	return r
}
