package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"webswitch/handoff/control"
	"webswitch/l7"
	"webswitch/shard"
)

// fakePath is a data path with fixed figures: two shards, be1 usable on
// both, be2 on shard 0 only, and be3 removed.
type fakePath struct {
	frames   [][]byte // what Capture hands over
	flows    []shard.FlowInfo
	filter   shard.FlowFilter // the last Flows filter
	problems []string         // what Health says
	draining bool
}

func (f *fakePath) Health() []string { return f.problems }
func (f *fakePath) Draining() bool   { return f.draining }

func (f *fakePath) Config() *shard.Config {
	return &shard.Config{
		Backends: []shard.Backend{
			{Target: control.Target{Name: "be1", Agent: netip.MustParseAddrPort("198.18.0.21:7070")}, IP: [4]byte{198, 18, 0, 21}},
			{Target: control.Target{Name: "be2", Agent: netip.MustParseAddrPort("198.18.0.22:7070")}, IP: [4]byte{198, 18, 0, 22}},
			{Target: control.Target{Name: "be3", Agent: netip.MustParseAddrPort("198.18.0.23:7070"), Removed: true}, IP: [4]byte{198, 18, 0, 23}},
		},
		Pools: []l7.Pool{{Name: "static", Backends: []int{0}}, {Name: "web", Backends: []int{1}}},
	}
}

func (f *fakePath) Snapshots() []shard.Snapshot {
	snap := func(id int, be2 bool) shard.Snapshot {
		return shard.Snapshot{
			Shard: id, FramesIn: 1000 + uint64(id), HandoffsOK: 10, SplicedFlows: 3, FlowsRequest: 2,
			HTTPErrors: map[int]uint64{503: 4},
			TLSRefused: map[int]uint64{404: 2}, ProtocolMismatch: 3,
			Drops:          map[string]uint64{"tcp_checksum": 7},
			HandoffLatency: []uint64{5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, HandoffLatencySum: 3.5,
			ActiveFlows: 5,
			Recovered:   map[string]uint64{"lookup": 9, "cookie": 1}, RecoveryAsked: 12, RecoveryQueries: 4,
			RecoveryUnanswered: 1, RecoveryConflicts: 2, Recovering: 3,
			RecoveryLatency: []uint64{0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, RecoveryLatencySum: 0.002,
			Backends: []shard.BackendSnapshot{
				{Name: "be1", HandoffsOK: 6, Usable: true, Active: 2},
				{Name: "be2", HandoffsOK: 4, HandoffsFailed: 1, Usable: be2, Active: 1, Downs: 1},
				{Name: "be3"},
			},
		}
	}
	return []shard.Snapshot{snap(0, true), snap(1, false)}
}

func (f *fakePath) Flows(ctx context.Context, filter shard.FlowFilter, offset, limit int) ([]shard.FlowInfo, int, error) {
	f.filter = filter
	end := min(len(f.flows), offset+limit)
	if offset > end {
		offset = end
	}
	return f.flows[offset:end], len(f.flows), nil
}

func (f *fakePath) Capture(ctx context.Context, n int, write func(shard.CapturedFrame) error) (int, uint64, error) {
	for i, fr := range f.frames[:min(n, len(f.frames))] {
		if err := write(shard.CapturedFrame{Time: time.Unix(1700000000, int64(i)), Data: fr}); err != nil {
			return i, 0, err
		}
	}
	return min(n, len(f.frames)), 0, nil
}

func get(t *testing.T, h http.Handler, method, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code, rec.Body.String()
}

func TestMetrics(t *testing.T) {
	h := adminHandler(&fakePath{draining: true}, nil, nil, nil)
	code, body := get(t, h, "GET", "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`webswitch_frames_received_total{shard="1"} 1001`,
		`webswitch_handoffs_total{result="ok",shard="0"} 10`,
		`webswitch_http_errors_total{shard="0",status="503"} 4`,
		`webswitch_dropped_frames_total{reason="tcp_checksum",shard="1"} 7`,
		`webswitch_flows{shard="0",state="spliced"} 3`,
		`webswitch_flows{shard="0",state="request"} 2`,
		`webswitch_backend_usable{backend="be2",shard="1"} 0`,
		`webswitch_backend_active_flows{backend="be1",shard="0"} 2`,
		`webswitch_backend_handoffs_total{backend="be2",result="failed",shard="0"} 1`,
		`webswitch_handoff_latency_seconds_bucket{shard="0",le="0.0001"} 5`,
		`webswitch_handoff_latency_seconds_bucket{shard="0",le="0.00025"} 10`,
		`webswitch_handoff_latency_seconds_bucket{shard="0",le="+Inf"} 11`,
		`webswitch_handoff_latency_seconds_sum{shard="0"} 3.5`,
		`webswitch_tls_refused_total{shard="1",status="404"} 2`,
		`webswitch_protocol_mismatch_total{shard="0"} 3`,
		"webswitch_draining 1",
		"webswitch_drain_flows 10",
		`webswitch_recovered_flows_total{how="lookup",shard="0"} 9`,
		`webswitch_recovered_flows_total{how="cookie",shard="1"} 1`,
		`webswitch_recovery_asked_total{shard="0"} 12`,
		`webswitch_recovery_queries_total{shard="0"} 4`,
		`webswitch_recovery_unanswered_total{shard="0"} 1`,
		`webswitch_recovery_conflicts_total{shard="0"} 2`,
		`webswitch_recovering{shard="1"} 3`,
		`webswitch_recovery_latency_seconds_bucket{shard="0",le="0.00025"} 8`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestHealthAndBackends(t *testing.T) {
	dp := &fakePath{}
	h := adminHandler(dp, nil, nil, nil)
	if code, _ := get(t, h, "GET", "/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	dp.problems = []string{"shard 1: no loop round for 3s", "interface eth0 is down (flags broadcast|multicast)"}
	if code, body := get(t, h, "GET", "/healthz"); code != 503 || !strings.Contains(body, `"shard 1: no loop round for 3s"`) || !strings.Contains(body, "eth0 is down") {
		t.Errorf("/healthz with problems: %d %s; want 503 naming them", code, body)
	}
	dp.problems = nil
	code, body := get(t, h, "GET", "/readyz")
	if code != 503 || !strings.Contains(body, `"web"`) || strings.Contains(body, `"static"`) {
		t.Errorf("/readyz: %d %s; want 503 naming pool web only (be2 is down on shard 1)", code, body)
	}
	dp.draining = true
	if code, body := get(t, h, "GET", "/readyz"); code != 503 || !strings.Contains(body, `"status": "draining"`) {
		t.Errorf("/readyz while draining: %d %s; want 503, draining", code, body)
	}
	dp.draining = false
	code, body = get(t, h, "GET", "/backends")
	var bs []BackendStatus
	if code != 200 || json.Unmarshal([]byte(body), &bs) != nil || len(bs) != 3 {
		t.Fatalf("/backends: %d %s", code, body)
	}
	want := BackendStatus{Name: "be2", Address: "198.18.0.22", Agent: "198.18.0.22:7070", UsableShards: 1, Shards: 2,
		ActiveFlows: 2, HandoffsOK: 8, HandoffsFailed: 2, Downs: 2}
	if bs[1] != want || !bs[2].Removed {
		t.Errorf("/backends: be2 %+v, want %+v; be3 removed %v", bs[1], want, bs[2].Removed)
	}
}

func TestFlowsAPI(t *testing.T) {
	fp := &fakePath{flows: []shard.FlowInfo{{Client: "198.18.0.10:1"}, {Client: "198.18.0.10:2"}, {Client: "198.18.0.10:3"}}}
	h := adminHandler(fp, nil, nil, nil)
	code, body := get(t, h, "GET", "/flows?client=198.18.0.10:2&backend=be1&state=spliced&offset=1&limit=1")
	var page FlowsPage
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil {
		t.Fatalf("/flows: %d %s", code, body)
	}
	if page.Total != 3 || page.Offset != 1 || len(page.Flows) != 1 || page.Flows[0].Client != "198.18.0.10:2" {
		t.Errorf("/flows page %+v", page)
	}
	wantFilter := shard.FlowFilter{Client: netip.MustParseAddr("198.18.0.10"), Port: 2, Backend: "be1", State: "spliced"}
	if fp.filter != wantFilter {
		t.Errorf("filter %+v, want %+v", fp.filter, wantFilter)
	}
	for _, bad := range []string{"client=nope", "state=asleep", "limit=0", "limit=100000", "offset=-1"} {
		if code, _ := get(t, h, "GET", "/flows?"+bad); code != 400 {
			t.Errorf("/flows?%s: %d, want 400", bad, code)
		}
	}
}

func TestReloadAPI(t *testing.T) {
	err := errors.New("switch.vip: cannot change while the switch runs; restart it")
	h := adminHandler(&fakePath{}, func() error { return err }, nil, nil)
	if code, body := get(t, h, "POST", "/reload"); code != 400 || !strings.Contains(body, "switch.vip") {
		t.Errorf("refused reload: %d %s", code, body)
	}
	if code, _ := get(t, h, "GET", "/reload"); code != 405 {
		t.Errorf("GET /reload: %d, want 405", code)
	}
	h = adminHandler(&fakePath{}, func() error { return nil }, nil, nil)
	if code, body := get(t, h, "POST", "/reload"); code != 200 || !strings.Contains(body, "reloaded") {
		t.Errorf("reload: %d %s", code, body)
	}
}

// TestCtl runs the ctl commands against the admin API of a fake switch.
func TestCtl(t *testing.T) {
	fp := &fakePath{
		flows:  []shard.FlowInfo{{Shard: 1, Client: "198.18.0.10:40000", VIPPort: 80, State: "spliced", Backend: "be2", Idle: 1.5}},
		frames: [][]byte{bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, 1514)},
	}
	srv := httptest.NewServer(adminHandler(fp, func() error { return nil }, nil, nil))
	defer srv.Close()
	admin := strings.TrimPrefix(srv.URL, "http://")
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := ctl(append([]string{"-admin", admin}, args...), &out, &errOut); code != 0 {
			t.Fatalf("ctl %v: status %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	if out := run("backends"); !strings.Contains(out, "be2") || !strings.Contains(out, "partly up") || !strings.Contains(out, "1/2 shards") || !strings.Contains(out, "removed") {
		t.Errorf("ctl backends:\n%s", out)
	}
	if out := run("flows", "-backend", "be2"); !strings.Contains(out, "198.18.0.10:40000") || !strings.Contains(out, "spliced") || !strings.Contains(out, "1 of 1 flows") {
		t.Errorf("ctl flows:\n%s", out)
	}
	if fp.filter.Backend != "be2" {
		t.Errorf("ctl flows sent filter %+v", fp.filter)
	}
	if out := run("reload"); strings.TrimSpace(out) != "reloaded" {
		t.Errorf("ctl reload: %q", out)
	}
	path := filepath.Join(t.TempDir(), "c.pcap")
	run("capture", "-n", "2", "-o", path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range fp.frames {
		data, ci, err := r.ReadPacketData()
		if err != nil || !bytes.Equal(data, want) || ci.Length != len(want) {
			t.Errorf("pcap frame %d: %d bytes, %v; want the captured frame", i, len(data), err)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Errorf("pcap has more than 2 frames: %v", err)
	}
	var errOut bytes.Buffer
	if code := ctl([]string{"-admin", admin, "frobnicate"}, io.Discard, &errOut); code != 2 {
		t.Errorf("unknown command: status %d, want 2", code)
	}
}
