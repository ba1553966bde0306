package policysim

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"webswitch/l7"
)

var allPolicies = []l7.Policy{
	l7.PolicyRoundRobin, l7.PolicyWeightedRoundRobin, l7.PolicyLeastConnections, l7.PolicyLARD,
	l7.PolicyBoundedLoadHash, l7.PolicyCookieAffinity, l7.PolicySourceAffinity,
}

// tiny is a small uniform trace over 8 URLs, 4 back-ends and 8 clients.
var tiny = Config{URLs: 8, Requests: 2000, Warmup: 400, Backends: 4, Clients: 8}

func compare(t *testing.T, cfg Config, policies ...l7.Policy) []Result {
	t.Helper()
	rs, err := Compare(cfg, policies)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestCacheOfEveryURLHits(t *testing.T) {
	cfg := tiny
	cfg.Cache = cfg.URLs
	for _, r := range compare(t, cfg, allPolicies...) {
		if r.HitRate != 1 {
			t.Errorf("%s: hit rate %v after warm-up, want 1", r.Policy, r.HitRate)
		}
	}
}

func TestRoundRobinSpreadsExactly(t *testing.T) {
	r := compare(t, tiny, l7.PolicyRoundRobin)[0]
	if diff := cmp.Diff([]int{400, 400, 400, 400}, r.PerBackend); diff != "" {
		t.Fatalf("requests per back-end (-want +got):\n%s", diff)
	}
	if r.RequestsMaxMean != 1 || r.Requests != 1600 {
		t.Fatalf("max/mean %v of %d requests, want 1 of 1600", r.RequestsMaxMean, r.Requests)
	}
}

// TestOneServer checks the timing on one back-end without a cache and
// with one client: every request takes MissTime.
func TestOneServer(t *testing.T) {
	cfg := Config{URLs: 10, Requests: 100, Backends: 1, Clients: 1, Cache: -1, MissTime: time.Millisecond}
	r := compare(t, cfg, l7.PolicyLeastConnections)[0]
	want := Result{Policy: "least-connections", Requests: 90, PerBackend: []int{90}, RequestsMaxMean: 1,
		OutstandingMaxMean: 1, Throughput: 1000, MeanResponse: time.Millisecond, P99Response: time.Millisecond}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Fatalf("result (-want +got):\n%s", diff)
	}
}

// TestLittlesLaw checks mean response = clients / throughput, and that
// the results do not depend on the run.
func TestLittlesLaw(t *testing.T) {
	cfg := Config{URLs: 1000, Zipf: 1, Requests: 20_000, Cache: 50, Clients: 16}
	first := compare(t, cfg, allPolicies...)
	if diff := cmp.Diff(first, compare(t, cfg, allPolicies...)); diff != "" {
		t.Fatalf("a second run differs:\n%s", diff)
	}
	for _, r := range first {
		little := float64(cfg.Clients) / r.Throughput
		if got := r.MeanResponse.Seconds(); math.Abs(got-little)/little > 0.02 {
			t.Errorf("%s: mean response %v, clients/throughput %.6f s", r.Policy, r.MeanResponse, little)
		}
		if r.OutstandingMaxMean < 1 || r.RequestsMaxMean < 1 {
			t.Errorf("%s: max/mean below 1: %+v", r.Policy, r)
		}
	}
}

// TestLocality checks that the policies that keep a URL on one back-end
// hit the cache more than round-robin on a Zipf trace whose popular URLs
// fit in the caches together but not in one.
func TestLocality(t *testing.T) {
	cfg := Config{URLs: 2000, Zipf: 1, Requests: 40_000, Cache: 100, Clients: 16}
	rs := compare(t, cfg, l7.PolicyRoundRobin, l7.PolicyLARD, l7.PolicyBoundedLoadHash, l7.PolicyCookieAffinity)
	for _, r := range rs[1:] {
		if r.HitRate < rs[0].HitRate+0.05 {
			t.Errorf("%s: hit rate %.3f, round-robin %.3f", r.Policy, r.HitRate, rs[0].HitRate)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{URLs: -1}, {Requests: 10, Warmup: 10}, {Cache: -2}, {Zipf: -1}, {Zipf: math.NaN()}, {MissTime: -1},
	} {
		if _, err := Compare(cfg, allPolicies); !errors.Is(err, ErrConfig) {
			t.Errorf("Compare(%+v) error %v, want ErrConfig", cfg, err)
		}
	}
	if _, err := Compare(Config{LoadFactor: 0.5}, []l7.Policy{l7.PolicyBoundedLoadHash}); !errors.Is(err, l7.ErrLoadFactor) {
		t.Errorf("load factor 0.5: error %v", err)
	}
}

func TestLRU(t *testing.T) {
	c := newLRU(10, 2)
	var got []bool
	for _, u := range []int32{1, 2, 1, 3, 2, 1, 3} {
		got = append(got, c.access(u))
	}
	// 3 evicts 2 (1 was used since); 2 then evicts 1; 1 evicts 3.
	if diff := cmp.Diff([]bool{false, false, true, false, false, false, false}, got); diff != "" {
		t.Fatalf("hits (-want +got):\n%s", diff)
	}
	none := newLRU(10, -1)
	if none.access(1) || none.access(1) {
		t.Fatal("a cache of capacity -1 hit")
	}
}

func TestReport(t *testing.T) {
	points, err := Sweep(tiny, []l7.Policy{l7.PolicyRoundRobin, l7.PolicyLARD}, []int{2, 8})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, points[1].Results); err != nil {
		t.Fatal(err)
	}
	if err := WriteSweepTable(&b, points); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| round-robin | 100.0 % | 1.00 |", "| cache per back-end | round-robin | lard |", "| 8 | 100.0 %,"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, b.String())
		}
	}
	dir := t.TempDir()
	if err := WriteCharts(dir, points); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{HitRateFile, ThroughputFile, BalanceFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("chart %s: %v", f, err)
		}
	}
}

// TestLARDShardsShareTargets checks that LARD's shards share one target
// table: every request has a key, so the shards decide as one picker would
// and the results are those of one shard.
func TestLARDShardsShareTargets(t *testing.T) {
	cfg := Config{URLs: 1000, Requests: 20000, Backends: 4, Cache: 100, Clients: 16}
	one := compare(t, cfg, l7.PolicyLARD)[0]
	cfg.Shards = 2
	two := compare(t, cfg, l7.PolicyLARD)[0]
	if diff := cmp.Diff(one, two); diff != "" {
		t.Fatalf("LARD with 2 shards differs from 1 shard (-1 +2):\n%s", diff)
	}
}
