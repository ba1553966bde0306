package l7

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// cluster is the switch's view of back-ends 0..n-1 in the tests: their
// live connections and which are down.
type cluster struct {
	load []int64
	down []bool
}

func newCluster(n int) *cluster {
	return &cluster{load: make([]int64, n), down: make([]bool, n)}
}

func (c *cluster) loadOf(b int) int64 { return c.load[b] }
func (c *cluster) up(b int) bool      { return !c.down[b] }

// pick calls p.Pick with c's load and up and fails the test when no
// back-end is picked.
func (c *cluster) pick(t testing.TB, p Picker, key string) int {
	t.Helper()
	b, ok := p.Pick([]byte(key), c.loadOf, c.up)
	if !ok {
		t.Fatalf("Pick(%q): no back-end", key)
	}
	return b
}

// seq returns the back-end indices 0..n-1.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// testKeys returns n distinct URL paths.
func testKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "/static/obj-%d.jpg", i)
	}
	return keys
}

// assign returns the back-end that p picks for each key.
func assign(t testing.TB, p Picker, c *cluster, keys [][]byte) []int {
	t.Helper()
	out := make([]int, len(keys))
	for i, k := range keys {
		b, ok := p.Pick(k, c.loadOf, c.up)
		if !ok {
			t.Fatalf("Pick(%q): no back-end", k)
		}
		out[i] = b
	}
	return out
}

// shares counts the keys per back-end.
func shares(assigned []int, n int) []int {
	count := make([]int, n)
	for _, b := range assigned {
		count[b]++
	}
	return count
}

func TestParsePolicy(t *testing.T) {
	for p := range numPolicies {
		got, err := ParsePolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	for _, s := range []string{"", "Round-Robin", "random", "lard "} {
		if _, err := ParsePolicy(s); !errors.Is(err, ErrPolicy) {
			t.Errorf("ParsePolicy(%q) error = %v, want ErrPolicy", s, err)
		}
	}
	if s := numPolicies.String(); s != "Policy(7)" {
		t.Errorf("String of an unknown policy = %q", s)
	}
}

func TestPoolValidate(t *testing.T) {
	tests := []struct {
		name string
		pool Pool
		want error
	}{
		{name: "defaults", pool: Pool{Backends: []int{0, 1}}},
		{name: "empty pool", pool: Pool{Policy: PolicyLARD, Targets: new(Targets)}},
		{name: "every parameter", pool: Pool{Backends: []int{3, 1}, Weights: []int{1, 256}, Policy: PolicyBoundedLoadHash,
			Key: HashKey{Kind: KeyHeader, Name: "X-User"}, LoadFactor: MaxLoadFactor, LARDLow: MaxLARDThreshold - 1,
			LARDHigh: MaxLARDThreshold, LARDTargets: MaxLARDTargets, Replicas: 1024}},
		{name: "key path", pool: Pool{Policy: PolicyLARD, Key: HashKey{Kind: KeyPath}, Targets: new(Targets)}},
		{name: "unknown policy", pool: Pool{Policy: numPolicies}, want: ErrPolicy},
		{name: "weights missing", pool: Pool{Backends: []int{0, 1}, Weights: []int{1}}, want: ErrWeights},
		{name: "weight 0", pool: Pool{Backends: []int{0, 1}, Weights: []int{1, 0}}, want: ErrWeights},
		{name: "weight too large", pool: Pool{Backends: []int{0}, Weights: []int{257}}, want: ErrWeights},
		{name: "duplicate back-end", pool: Pool{Backends: []int{0, 1, 0}}, want: ErrDuplicate},
		{name: "load factor below 1", pool: Pool{LoadFactor: 0.9}, want: ErrLoadFactor},
		{name: "load factor NaN", pool: Pool{LoadFactor: math.NaN()}, want: ErrLoadFactor},
		{name: "load factor infinite", pool: Pool{LoadFactor: math.Inf(1)}, want: ErrLoadFactor},
		{name: "load factor above 10", pool: Pool{LoadFactor: MaxLoadFactor + 0.5}, want: ErrLoadFactor},
		{name: "LARD low above default high", pool: Pool{LARDLow: 70}, want: ErrLARDHigh},
		{name: "LARD low equals high", pool: Pool{LARDLow: 5, LARDHigh: 5}, want: ErrLARDHigh},
		{name: "LARD high too large", pool: Pool{LARDHigh: MaxLARDThreshold + 1}, want: ErrLARDHigh},
		{name: "LARD negative low", pool: Pool{LARDLow: -1}, want: ErrLARDLow},
		{name: "LARD low too large", pool: Pool{LARDLow: MaxLARDThreshold + 1, LARDHigh: MaxLARDThreshold + 2}, want: ErrLARDLow},
		{name: "LARD without its table", pool: Pool{Policy: PolicyLARD}, want: ErrTargets},
		{name: "key of no policy", pool: Pool{Key: HashKey{Kind: KeyPath}}, want: ErrHashKey},
		{name: "key the policy does not take", pool: Pool{Policy: PolicyCookieAffinity, Key: HashKey{Kind: KeyPath}}, want: ErrHashKey},
		{name: "bad cookie name", pool: Pool{Policy: PolicyCookieAffinity, Key: HashKey{Kind: KeyCookie, Name: "a b"}}, want: ErrHashKey},
		{name: "name of an unnamed key", pool: Pool{Policy: PolicySourceAffinity, Key: HashKey{Kind: KeyClient, Name: "x"}}, want: ErrHashKey},
		{name: "LARD table negative", pool: Pool{LARDTargets: -1}, want: ErrLARDTargets},
		{name: "LARD table too large", pool: Pool{LARDTargets: MaxLARDTargets + 1}, want: ErrLARDTargets},
		{name: "replicas too many", pool: Pool{Replicas: MaxReplicas + 1}, want: ErrReplicas},
		{name: "ring too large", pool: Pool{Backends: seq(5), Weights: []int{256, 256, 256, 256, 256}, Replicas: 1024}, want: ErrReplicas},
		{name: "negative replicas", pool: Pool{Replicas: -1}, want: ErrReplicas},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.pool.Validate()
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
			if err == nil {
				return
			}
			defer func() {
				if recover() == nil {
					t.Error("NewPicker did not panic on an invalid pool")
				}
			}()
			NewPicker(&tt.pool)
		})
	}
}

func TestNoneUp(t *testing.T) {
	for pol := range numPolicies {
		for _, backends := range [][]int{nil, {4, 5}} {
			t.Run(fmt.Sprintf("%v/%d back-ends", pol, len(backends)), func(t *testing.T) {
				p := NewPicker(&Pool{Backends: backends, Policy: pol, Targets: new(Targets)})
				c := newCluster(6)
				c.down[4], c.down[5] = true, true
				for _, key := range []string{"", "/a"} {
					if b, ok := p.Pick([]byte(key), c.loadOf, c.up); ok {
						t.Fatalf("Pick(%q) = %d with no back-end up", key, b)
					}
				}
			})
		}
	}
}

func TestRoundRobinPicker(t *testing.T) {
	pool := Pool{Backends: []int{3, 4, 5}}
	p := NewPicker(&pool)
	c := newCluster(6)
	c.down[4] = true
	var cursor uint32
	for i := range 10 {
		want, _ := pool.PickRoundRobin(&cursor, c.up)
		if got := c.pick(t, p, ""); got != want {
			t.Fatalf("pick %d: %d, PickRoundRobin %d", i, got, want)
		}
	}
}

func TestWeightedRoundRobin(t *testing.T) {
	t.Run("smooth", func(t *testing.T) {
		p := NewPicker(&Pool{Backends: []int{0, 1, 2}, Weights: []int{5, 1, 1}, Policy: PolicyWeightedRoundRobin})
		c := newCluster(3)
		var got []int
		for range 14 {
			got = append(got, c.pick(t, p, ""))
		}
		// nginx's sequence for weights 5, 1, 1: a a b a c a a, twice.
		want := []int{0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("sequence (-want +got):\n%s", diff)
		}
	})
	tests := []struct {
		name    string
		weights []int
		down    []int
		want    []int // picks per back-end over one cycle
	}{
		{name: "equal", weights: []int{1, 1, 1, 1}, want: []int{1, 1, 1, 1}},
		{name: "mixed", weights: []int{3, 2, 1, 4}, want: []int{3, 2, 1, 4}},
		{name: "large", weights: []int{256, 1, 100}, want: []int{256, 1, 100}},
		{name: "one down", weights: []int{3, 2, 1, 4}, down: []int{3}, want: []int{3, 2, 1, 0}},
		{name: "two down", weights: []int{3, 2, 1, 4}, down: []int{0, 1}, want: []int{0, 0, 1, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(tt.weights)
			p := NewPicker(&Pool{Backends: seq(n), Weights: tt.weights, Policy: PolicyWeightedRoundRobin})
			c := newCluster(n)
			for _, b := range tt.down {
				c.down[b] = true
			}
			cycle := 0
			for _, w := range tt.want {
				cycle += w
			}
			for k := range 3 { // every cycle is exact, not only the first
				got := make([]int, n)
				for range cycle {
					got[c.pick(t, p, "")]++
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Fatalf("cycle %d: picks per back-end (-want +got):\n%s", k, diff)
				}
			}
		})
	}
}

func TestLeastConnections(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		load    []int64
		down    []int
		want    []int // successive picks with the loads unchanged
	}{
		{name: "least loaded", load: []int64{5, 3, 9}, want: []int{1, 1, 1}},
		{name: "ties round-robin", load: []int64{2, 7, 2, 2}, want: []int{0, 2, 3, 0, 2}},
		{name: "all equal", load: []int64{0, 0, 0}, want: []int{0, 1, 2, 0}},
		{name: "weighted", weights: []int{2, 1, 1}, load: []int64{10, 6, 7}, want: []int{0, 0}},
		{name: "weighted tie", weights: []int{2, 1}, load: []int64{10, 5}, want: []int{0, 1, 0}},
		{name: "down skipped", load: []int64{5, 3, 9}, down: []int{1}, want: []int{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(tt.load)
			p := NewPicker(&Pool{Backends: seq(n), Weights: tt.weights, Policy: PolicyLeastConnections})
			c := newCluster(n)
			copy(c.load, tt.load)
			for _, b := range tt.down {
				c.down[b] = true
			}
			var got []int
			for range tt.want {
				got = append(got, c.pick(t, p, "ignored"))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("picks (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLARD plays a crafted sequence on back-ends 10, 11, 12 with
// T_low = 2 and T_high = 4.
func TestLARD(t *testing.T) {
	p := NewPicker(&Pool{Backends: []int{10, 11, 12}, Policy: PolicyLARD, LARDLow: 2, LARDHigh: 4, Targets: new(Targets)})
	c := newCluster(13)
	steps := []struct {
		why    string
		target string
		load   [3]int64 // of 10, 11, 12
		down   int      // a back-end down, or 0
		want   int
	}{
		{why: "new target to the least loaded", target: "/a", load: [3]int64{3, 1, 2}, want: 11},
		{why: "another new target", target: "/b", load: [3]int64{0, 5, 5}, want: 10},
		{why: "kept below T_high though others are less loaded", target: "/a", load: [3]int64{0, 4, 0}, want: 11},
		{why: "kept above T_high when none is below T_low", target: "/a", load: [3]int64{3, 5, 2}, want: 11},
		{why: "moved above T_high when one is below T_low", target: "/a", load: [3]int64{3, 5, 1}, want: 12},
		{why: "kept below 2*T_high when none is below T_low", target: "/a", load: [3]int64{7, 6, 7}, want: 12},
		{why: "moved at 2*T_high", target: "/a", load: [3]int64{7, 6, 8}, want: 11},
		{why: "other target unaffected", target: "/b", load: [3]int64{3, 0, 0}, want: 10},
		{why: "moved when its back-end is down", target: "/b", load: [3]int64{0, 9, 3}, down: 10, want: 12},
		{why: "stays after the back-end comes back", target: "/b", load: [3]int64{0, 9, 3}, want: 12},
		{why: "empty key: least loaded, not recorded", target: "", load: [3]int64{0, 9, 3}, want: 10},
		{why: "first target where it was", target: "/a", load: [3]int64{0, 3, 3}, want: 11},
	}
	for i, st := range steps {
		copy(c.load[10:], st.load[:])
		clear(c.down)
		if st.down != 0 {
			c.down[st.down] = true
		}
		if got := c.pick(t, p, st.target); got != st.want {
			t.Fatalf("step %d (%s): %q went to %d, want %d", i, st.why, st.target, got, st.want)
		}
	}
}

// TestLARDSharedByShards makes one picker per shard for the same pool: a
// target one shard has placed keeps its back-end when another shard picks
// it, though the loads changed.
func TestLARDSharedByShards(t *testing.T) {
	pool := &Pool{Backends: seq(3), Policy: PolicyLARD, LARDLow: 2, LARDHigh: 4, Targets: new(Targets)}
	shards := []Picker{NewPicker(pool), NewPicker(pool)}
	c := newCluster(3)
	c.load = []int64{0, 3, 3}
	if b := c.pick(t, shards[0], "/a"); b != 0 {
		t.Fatalf("shard 0 placed /a on %d, want 0", b)
	}
	c.load = []int64{3, 0, 3}
	if b := c.pick(t, shards[1], "/a"); b != 0 {
		t.Fatalf("shard 1 sent /a to %d, want 0 where shard 0 placed it", b)
	}
}

// TestLARDConcurrentShards runs one picker per shard in its own goroutine,
// each seeing another back-end as the least loaded (all below T_low), so
// that shards with tables of their own would disagree: the first shard to
// pick a target places it, and every shard then sends it there. Run it
// with -race.
func TestLARDConcurrentShards(t *testing.T) {
	const shards = 4
	keys := testKeys(2000)
	pool := &Pool{Backends: seq(shards), Policy: PolicyLARD, Targets: new(Targets)}
	got := make([][]int, shards)
	var wg sync.WaitGroup
	for g := range shards {
		p := NewPicker(pool)
		load := func(b int) int64 { return int64((b - g + shards) % shards) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[g] = make([]int, len(keys))
			for i := range keys {
				k := (i + g*len(keys)/shards) % len(keys) // each shard starts elsewhere
				b, ok := p.Pick(keys[k], load, func(int) bool { return true })
				if !ok {
					t.Error("no back-end")
					return
				}
				got[g][k] = b
			}
		}()
	}
	wg.Wait()
	for g := 1; g < shards; g++ {
		if diff := cmp.Diff(got[0], got[g]); diff != "" {
			t.Fatalf("shards 0 and %d sent targets to different back-ends (-0 +%d):\n%s", g, g, diff)
		}
	}
}

// TestLARDWeighted checks that the thresholds scale with the weight.
func TestLARDWeighted(t *testing.T) {
	p := NewPicker(&Pool{Backends: []int{0, 1}, Weights: []int{3, 1}, Policy: PolicyLARD, LARDLow: 2, LARDHigh: 4, Targets: new(Targets)})
	c := newCluster(2)
	c.load = []int64{0, 1}
	if b := c.pick(t, p, "/x"); b != 0 {
		t.Fatalf("new target went to %d, want 0 (load per weight 0)", b)
	}
	c.load = []int64{12, 1} // at 3*T_high: kept
	if b := c.pick(t, p, "/x"); b != 0 {
		t.Fatalf("at the weighted T_high: moved to %d", b)
	}
	c.load = []int64{13, 1} // above 3*T_high, back-end 1 below T_low
	if b := c.pick(t, p, "/x"); b != 1 {
		t.Fatalf("above the weighted T_high: stayed on %d", b)
	}
}

// TestLARDEviction fills a one-set table: a new target evicts the least
// recently used one, which becomes new again.
func TestLARDEviction(t *testing.T) {
	for _, touch := range []bool{false, true} {
		t.Run(fmt.Sprintf("first target touched %v", touch), func(t *testing.T) {
			p := NewPicker(&Pool{Backends: seq(3), Policy: PolicyLARD, LARDTargets: lardWays, Targets: new(Targets)})
			c := newCluster(3)
			c.load = []int64{0, 5, 5}
			c.pick(t, p, "/t0") // to 0
			c.load = []int64{5, 0, 5}
			for _, target := range []string{"/t1", "/t2", "/t3"} {
				c.pick(t, p, target) // to 1
			}
			if touch {
				c.pick(t, p, "/t0")
			}
			c.pick(t, p, "/t4") // evicts /t0, or /t1 if /t0 was touched
			c.load = []int64{5, 5, 0}
			want := map[bool]int{false: 2, true: 0}[touch]
			if got := c.pick(t, p, "/t0"); got != want {
				t.Fatalf("/t0 went to %d, want %d", got, want)
			}
		})
	}
}

// TestRingDistribution hashes 100,000 URL paths and 65,536 client
// addresses on the ring with DefaultReplicas points per unit of weight.
// Every back-end's share is within 12% (relative) of its weight's share;
// the ring alone gives a back-end of weight w a relative standard
// deviation of about 1/sqrt(DefaultReplicas*w), 6.25% for w = 1.
func TestRingDistribution(t *testing.T) {
	addrs := make([][]byte, 65536)
	for i := range addrs {
		addrs[i] = []byte{198, 18, byte(i >> 8), byte(i)}
	}
	tests := []struct {
		name    string
		keys    [][]byte
		weights []int
	}{
		{name: "paths, 4 equal", keys: testKeys(100_000), weights: []int{1, 1, 1, 1}},
		{name: "paths, 8 equal", keys: testKeys(100_000), weights: []int{1, 1, 1, 1, 1, 1, 1, 1}},
		{name: "paths, weighted", keys: testKeys(100_000), weights: []int{1, 2, 1, 4}},
		{name: "client addresses, 4 equal", keys: addrs, weights: []int{1, 1, 1, 1}},
	}
	const tolerance = 0.12
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(tt.weights)
			p := NewPicker(&Pool{Backends: seq(n), Weights: tt.weights, Policy: PolicySourceAffinity})
			got := shares(assign(t, p, newCluster(n), tt.keys), n)
			total := 0
			for _, w := range tt.weights {
				total += w
			}
			worst := 0.0
			for b, count := range got {
				want := float64(len(tt.keys)) * float64(tt.weights[b]) / float64(total)
				dev := math.Abs(float64(count)-want) / want
				worst = max(worst, dev)
				if dev > tolerance {
					t.Errorf("back-end %d: %d keys, want %.0f +-%.0f%%", b, count, want, 100*tolerance)
				}
			}
			t.Logf("keys per back-end %v: worst deviation %.1f%%", got, 100*worst)
		})
	}
}

// TestKeysMoved measures the keys that move when a back-end leaves or
// joins a pool of 5 under consistent hashing: the minimum is the keys of
// the back-end that leaves (about 1/5) or the new back-end's share (about
// 1/6), and exactly those move.
func TestKeysMoved(t *testing.T) {
	keys := testKeys(100_000)
	c := newCluster(6)
	pool := func(backends ...int) Picker {
		return NewPicker(&Pool{Backends: backends, Policy: PolicyCookieAffinity})
	}
	before := assign(t, pool(0, 1, 2, 3, 4), c, keys)
	// moved returns how many keys differ from before and checks that
	// every one of them was on from, if from >= 0, and is now on to, if
	// to >= 0.
	moved := func(after []int, from, to int) int {
		n := 0
		for i := range keys {
			if after[i] == before[i] {
				continue
			}
			n++
			if from >= 0 && before[i] != from || to >= 0 && after[i] != to {
				t.Fatalf("key %q moved from %d to %d", keys[i], before[i], after[i])
			}
		}
		return n
	}
	report := func(what string, n, minimum int) {
		t.Logf("%s: %d of %d keys moved (%.2f%%); the minimum is %d (%.2f%%)",
			what, n, len(keys), 100*float64(n)/float64(len(keys)), minimum, 100*float64(minimum)/float64(len(keys)))
		if n != minimum {
			t.Errorf("%s: %d keys moved, want exactly %d", what, n, minimum)
		}
	}
	onTwo := shares(before, 6)[2]

	c.down[2] = true
	down := assign(t, pool(0, 1, 2, 3, 4), c, keys)
	report("back-end 2 down", moved(down, 2, -1), onTwo)
	if spread := shares(down, 6); slices.Contains(spread[:2], 0) || slices.Contains(spread[3:5], 0) {
		t.Errorf("the keys of back-end 2 did not spread over the others: %v", spread)
	}
	c.down[2] = false
	report("back-end 2 up again", moved(assign(t, pool(0, 1, 2, 3, 4), c, keys), -1, -1), 0)

	removed := assign(t, pool(0, 1, 3, 4), c, keys)
	if diff := cmp.Diff(down, removed); diff != "" {
		t.Errorf("removing back-end 2 differs from taking it down:\n%s", diff)
	}
	report("pool reordered", moved(assign(t, pool(4, 3, 2, 1, 0), c, keys), -1, -1), 0)

	added := assign(t, pool(0, 1, 2, 3, 4, 5), c, keys)
	report("back-end 5 added", moved(added, -1, 5), shares(added, 6)[5])
	if share := float64(shares(added, 6)[5]) / float64(len(keys)); math.Abs(share-1.0/6) > 0.1/6 {
		t.Errorf("the new back-end took %.2f%% of the keys, want 1/6 +-10%%", 100*share)
	}
}

// TestKeysMovedBoundedLoad measures, with bounded-load hashing, the
// connections whose back-end changes when a back-end of 5 goes down. Key i
// of 2,000 opens 1+2000/(i+1) connections (Zipf-like, 18,000 in all),
// interleaved, each adding one to its back-end's load; the same sequence
// is replayed with back-end 2 down. The connections on back-end 2 all
// move; others move too, because the bound moves with the loads.
func TestKeysMovedBoundedLoad(t *testing.T) {
	keys := testKeys(2000)
	for _, factor := range []float64{1.25, 2} {
		t.Run(fmt.Sprintf("c=%g", factor), func(t *testing.T) {
			p := NewPicker(&Pool{Backends: seq(5), Policy: PolicyBoundedLoadHash, LoadFactor: factor})
			c := newCluster(5)
			replay := func() []int {
				clear(c.load)
				var out []int
				for round := 0; round <= len(keys); round++ {
					for i := 0; i < len(keys) && round <= len(keys)/(i+1); i++ {
						b := c.pick(t, p, string(keys[i]))
						c.load[b]++
						out = append(out, b)
					}
				}
				return out
			}
			before := replay()
			c.down[2] = true
			after := replay()
			moved, minimum := 0, 0
			for i := range before {
				if before[i] == 2 {
					minimum++
				}
				if after[i] != before[i] {
					moved++
				}
			}
			if slices.Contains(after, 2) || minimum == 0 {
				t.Fatalf("back-end 2 had %d connections before, %d after going down", minimum, shares(after, 5)[2])
			}
			t.Logf("back-end 2 of 5 down: %d of %d connections moved (%.2f%%), %.2f times the minimum %d",
				moved, len(before), 100*float64(moved)/float64(len(before)), float64(moved)/float64(minimum), minimum)
		})
	}
}

// TestBoundedLoad runs random arrivals of a few hot keys and departures on
// 5 back-ends, one of them down, and checks every pick against the bound.
func TestBoundedLoad(t *testing.T) {
	for _, tt := range []struct {
		name    string
		factor  float64
		weights []int
	}{
		{name: "c=1.25", factor: 1.25},
		{name: "c=1", factor: 1},
		{name: "c=2 weighted", factor: 2, weights: []int{1, 3, 1, 2, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPicker(&Pool{Backends: seq(5), Weights: tt.weights, Policy: PolicyBoundedLoadHash, LoadFactor: tt.factor})
			c := newCluster(5)
			c.down[3] = true
			weight := func(b int) int64 {
				if tt.weights == nil {
					return 1
				}
				return int64(tt.weights[b])
			}
			rng := rand.New(rand.NewPCG(1, 2))
			var live []int
			counts := make([]int, 5)
			for range 20_000 {
				if len(live) > 0 && rng.IntN(2) == 0 {
					i := rng.IntN(len(live))
					c.load[live[i]]--
					live[i] = live[len(live)-1]
					live = live[:len(live)-1]
					continue
				}
				var total, weightUp int64
				for b := range 5 {
					if !c.down[b] {
						total += c.load[b]
						weightUp += weight(b)
					}
				}
				b := c.pick(t, p, fmt.Sprintf("/hot/%d", rng.IntN(4)))
				bound := int64(math.Ceil(tt.factor * float64((total+1)*weight(b)) / float64(weightUp)))
				if c.down[b] || c.load[b]+1 > bound {
					t.Fatalf("picked %d (down %v) with load %d, bound %d", b, c.down[b], c.load[b], bound)
				}
				c.load[b]++
				counts[b]++
				live = append(live, b)
			}
			t.Logf("picks per back-end: %v", counts)
		})
	}
}

// TestBoundedLoadIsConsistentHashing checks that with room everywhere
// bounded-load hashing picks as plain consistent hashing.
func TestBoundedLoadIsConsistentHashing(t *testing.T) {
	keys := testKeys(10_000)
	c := newCluster(4)
	c.load = []int64{10, 40, 0, 25}
	c.down[2] = true
	bounded := NewPicker(&Pool{Backends: seq(4), Policy: PolicyBoundedLoadHash, LoadFactor: MaxLoadFactor})
	plain := NewPicker(&Pool{Backends: seq(4), Policy: PolicySourceAffinity})
	if diff := cmp.Diff(assign(t, plain, c, keys), assign(t, bounded, c, keys)); diff != "" {
		t.Fatalf("bounded-load with the largest factor differs from consistent hashing:\n%s", diff)
	}
}

func TestEmptyKeyLeastConnections(t *testing.T) {
	for _, pol := range []Policy{PolicyLARD, PolicyBoundedLoadHash, PolicyCookieAffinity, PolicySourceAffinity} {
		t.Run(pol.String(), func(t *testing.T) {
			p := NewPicker(&Pool{Backends: seq(3), Policy: pol, Targets: new(Targets)})
			c := newCluster(3)
			c.load = []int64{3, 1, 2}
			if b := c.pick(t, p, ""); b != 1 {
				t.Fatalf("empty key went to %d, want the least loaded, 1", b)
			}
			c.load = []int64{0, 0, 0}
			got := []int{c.pick(t, p, ""), c.pick(t, p, ""), c.pick(t, p, "")}
			if diff := cmp.Diff([]int{2, 0, 1}, got); diff != "" {
				t.Fatalf("ties not round-robin (-want +got):\n%s", diff)
			}
		})
	}
}

// benchPicker returns a picker of pol over 8 back-ends, one down, with
// loads, and its load and up functions.
func benchPicker(pol Policy) (Picker, func(int) int64, func(int) bool) {
	c := newCluster(8)
	c.load = []int64{30, 31, 29, 33, 30, 28, 35, 30}
	c.down[3] = true
	return NewPicker(&Pool{Backends: seq(8), Weights: []int{1, 2, 1, 1, 3, 1, 1, 1}, Policy: pol, Targets: new(Targets)}), c.loadOf, c.up
}

func TestPickerNoAllocs(t *testing.T) {
	keys := testKeys(1024)
	for pol := range numPolicies {
		t.Run(pol.String(), func(t *testing.T) {
			p, load, up := benchPicker(pol)
			i := 0
			pick := func() {
				if _, ok := p.Pick(keys[i%len(keys)], load, up); !ok {
					t.Fatal("none up")
				}
				i++
			}
			for range 2 * len(keys) {
				pick() // warm LARD's table
			}
			if n := testing.AllocsPerRun(1000, pick); n != 0 {
				t.Fatalf("%v allocations per Pick, want 0", n)
			}
		})
	}
}

func BenchmarkPick(b *testing.B) {
	keys := testKeys(1024)
	for pol := range numPolicies {
		b.Run(pol.String(), func(b *testing.B) {
			p, load, up := benchPicker(pol)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := p.Pick(keys[i&1023], load, up); !ok {
					b.Fatal("none up")
				}
				i++
			}
		})
	}
}
