package recovery

import (
	"encoding/json"
	"errors"
	"math"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"webswitch/bench/pktrate"
	"webswitch/bench/testbed"
	"webswitch/tcpfsm/header"
)

// exposition is a piece of a two-shard switch's /metrics, as
// client_golang writes it.
const exposition = `# HELP webswitch_recovered_flows_total Connections recovered.
# TYPE webswitch_recovered_flows_total counter
webswitch_recovered_flows_total{how="cookie",shard="0"} 1
webswitch_recovered_flows_total{how="cookie",shard="1"} 0
webswitch_recovered_flows_total{how="lookup",shard="0"} 600
webswitch_recovered_flows_total{how="lookup",shard="1"} 400
webswitch_recovery_asked_total{shard="0"} 700
webswitch_recovery_asked_total{shard="1"} 450
webswitch_recovery_queries_total{shard="0"} 22
webswitch_recovery_queries_total{shard="1"} 16
webswitch_recovery_unanswered_total{shard="0"} 0
webswitch_recovery_unanswered_total{shard="1"} 2
webswitch_recovery_conflicts_total{shard="0"} 0
webswitch_recovery_conflicts_total{shard="1"} 0
webswitch_recovering{shard="0"} 3
webswitch_recovering{shard="1"} 0
webswitch_handoffs_total{result="ok",shard="0"} 5
webswitch_handoffs_total{result="timeout",shard="0"} 7
webswitch_connections_total{shard="1"} 2
webswitch_backend_usable{backend="be1",shard="0"} 1
webswitch_backend_usable{backend="be2",shard="0"} 0
webswitch_frames_forwarded_total{shard="0"} 990
webswitch_frames_received_total{shard="0"} 1e+06
webswitch_frames_received_total{shard="1"} 12
webswitch_ring_drops_total{shard="0"} 9
webswitch_dropped_frames_total{reason="recovery_full",shard="0"} 40
webswitch_dropped_frames_total{reason="recovery_full",shard="1"} 10
webswitch_dropped_frames_total{reason="no_owner",shard="1"} 0
webswitch_recovery_latency_seconds_bucket{shard="0",le="0.001"} 100
webswitch_recovery_latency_seconds_bucket{shard="0",le="0.01"} 500
webswitch_recovery_latency_seconds_bucket{shard="0",le="+Inf"} 601
webswitch_recovery_latency_seconds_sum{shard="0"} 1.5
webswitch_recovery_latency_seconds_count{shard="0"} 601
webswitch_recovery_latency_seconds_bucket{shard="1",le="0.001"} 0
webswitch_recovery_latency_seconds_bucket{shard="1",le="0.01"} 300
webswitch_recovery_latency_seconds_bucket{shard="1",le="+Inf"} 400
webswitch_recovery_latency_seconds_sum{shard="1"} 0.5
webswitch_recovery_latency_seconds_count{shard="1"} 400
go_goroutines 12
`

func TestParseCounters(t *testing.T) {
	got, err := parseCounters(exposition)
	if err != nil {
		t.Fatal(err)
	}
	want := Counters{
		Lookup: 1000, Cookie: 1, Asked: 1150, Lookups: 38, Unanswered: 2, Recovering: 3, HandoffsOK: 5,
		Connections: 2, Forwarded: 990, Usable: 1, FramesIn: 1000012, RingDrops: 9,
		Drops:   map[string]uint64{"recovery_full": 50, "no_owner": 0},
		Latency: Histogram{Bounds: []float64{0.001, 0.01}, Counts: []uint64{100, 800, 1001}, Sum: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseCounters (-want +got):\n%s", diff)
	}
	if _, err := json.Marshal(got); err != nil {
		t.Errorf("the counters do not encode as JSON (wsbench recovery -json): %v", err)
	}
}

func TestParseCountersErrors(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"no series", "go_goroutines 12\n"},
		{"no value", "webswitch_recovering{shard=\"0\"}\n"},
		{"bad value", "webswitch_recovering{shard=\"0\"} x\n"},
		{"unclosed labels", "webswitch_recovering{shard=\"0\" 1\n"},
		{"unquoted label", "webswitch_recovering{shard=0} 1\n"},
		{"bad le", "webswitch_recovery_latency_seconds_bucket{le=\"soon\"} 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseCounters(tc.text); err == nil {
				t.Errorf("parseCounters(%q): no error", tc.text)
			}
		})
	}
}

func TestCountersSub(t *testing.T) {
	before, err := parseCounters(exposition)
	if err != nil {
		t.Fatal(err)
	}
	after := before
	after.Lookup += 10
	after.Asked += 12
	after.Recovering = 1
	after.Drops = map[string]uint64{"recovery_full": 55, "no_owner": 0, "recovery_rate": 4}
	after.Latency.Counts = []uint64{100, 805, 1010}
	after.Latency.Sum = 2.5
	want := Counters{
		Lookup: 10, Asked: 12, Recovering: 1, Usable: 1, // the gauges as after
		Drops:   map[string]uint64{"recovery_full": 5, "recovery_rate": 4},
		Latency: Histogram{Bounds: before.Latency.Bounds, Counts: []uint64{0, 5, 9}, Sum: 0.5},
	}
	if diff := cmp.Diff(want, after.sub(before)); diff != "" {
		t.Errorf("sub (-want +got):\n%s", diff)
	}
}

func TestHistogramQuantile(t *testing.T) {
	h := Histogram{Bounds: []float64{0.001, 0.01}, Counts: []uint64{10, 99, 100}}
	for _, tc := range []struct {
		q, want float64
	}{
		{0, 0.001}, {0.1, 0.001}, {0.11, 0.01}, {0.99, 0.01}, {1, math.Inf(1)},
	} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := (Histogram{}).Quantile(0.5); got != 0 {
		t.Errorf("Quantile of an empty histogram = %v, want 0", got)
	}
}

// TestTuples checks the connections' client ends: distinct, in the LAN
// but on no host, and the last one still a unicast address.
func TestTuples(t *testing.T) {
	lan := netip.MustParsePrefix(testbed.LAN)
	hosts := map[netip.Addr]bool{
		netip.MustParseAddr(testbed.ClientIP): true, netip.MustParseAddr(testbed.SwitchIP): true,
		netip.MustParseAddr(testbed.VIP): true, netip.MustParseAddr(testbed.AttackerIP): true,
	}
	for i := 1; i <= testbed.MaxBackends; i++ {
		hosts[netip.MustParseAddr(testbed.BackendIP(i))] = true
	}
	seen := map[netip.AddrPort]int{}
	for _, i := range []int{0, 1, portsPerAddr - 1, portsPerAddr, 3*portsPerAddr + 17, MaxFlows - 1} {
		c := tuple(i)
		if j, dup := seen[c]; dup {
			t.Errorf("tuple(%d) = tuple(%d) = %v", i, j, c)
		}
		seen[c] = i
		if !lan.Contains(c.Addr()) || hosts[c.Addr()] || c.Addr() == lan.Addr() || c.Addr().As4()[3] == 255 {
			t.Errorf("tuple(%d) = %v: want an address of %s that no host has, not the network's nor broadcast", i, c, lan)
		}
		if c.Port() < minPort {
			t.Errorf("tuple(%d) = %v: port below %d", i, c, minPort)
		}
	}
	if got, want := tuple(portsPerAddr), netip.AddrPortFrom(clientBase.Next(), minPort); got != want {
		t.Errorf("tuple(portsPerAddr) = %v, want %v", got, want)
	}
	if err := checkFlows(MaxFlows + 1); !errors.Is(err, ErrConfig) {
		t.Errorf("checkFlows(MaxFlows+1) = %v, want ErrConfig", err)
	}
}

// TestACKFrame checks that a connection's ACK is what its re-created
// socket expects next: from its client to the VIP, the client's next
// byte, acknowledging the one byte agent.Recreate sent (it starts the send
// sequence at SndNxt-1).
func TestACKFrame(t *testing.T) {
	src, dst := [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}
	idx := []int{7, portsPerAddr + 3}
	frames := ackFrames(idx, src, dst)
	if len(frames) != len(idx)*pktrate.FrameLen {
		t.Fatalf("%d bytes of frames, want %d", len(frames), len(idx)*pktrate.FrameLen)
	}
	for k, i := range idx {
		st := connState(i)
		f := header.Ethernet(frames[k*pktrate.FrameLen : (k+1)*pktrate.FrameLen])
		ip, err := header.ParseIPv4(f[header.EthernetLen:])
		if err != nil {
			t.Fatal(err)
		}
		tcp, err := header.ParseTCP(ip.Payload())
		if err != nil {
			t.Fatal(err)
		}
		got := struct {
			Src, Dst        string
			Seq, Ack        uint32
			Flags           uint8
			Window          uint16
			SrcMAC, DstMAC  string
			IPCsum, TCPCsum bool
		}{
			netip.AddrPortFrom(netip.AddrFrom4(ip.Src()), tcp.SrcPort()).String(),
			netip.AddrPortFrom(netip.AddrFrom4(ip.Dst()), tcp.DstPort()).String(),
			tcp.Seq(), tcp.Ack(), tcp.Flags(), tcp.Window(),
			string(f.Src()), string(f.Dst()),
			ip.ChecksumValid(), tcp.ChecksumValid(ip.Src(), ip.Dst()),
		}
		want := got
		want.Src, want.Dst = st.Client.String(), st.VIP.String()
		want.Seq, want.Ack = st.RcvNxt, st.SndNxt
		want.Flags, want.Window = header.FlagACK, uint16(st.SndWnd>>st.SndWScale)
		want.SrcMAC, want.DstMAC = string(src[:]), string(dst[:])
		want.IPCsum, want.TCPCsum = true, true
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ACK of connection %d (-want +got):\n%s", i, diff)
		}
		if st.SndNxt != st.SndISN+1 || st.RcvNxt != st.RcvIRS+1 || st.VIP.Port() != vipPort {
			t.Errorf("connection %d: state %+v: want a handoff right after the handshake, to port %d", i, st, vipPort)
		}
	}
}

func TestParseMemInfo(t *testing.T) {
	m, err := parseMemInfo("MemTotal:       24684000 kB\nMemFree:        1 kB\nMemAvailable:   2000 kB\nSlab:             300 kB\n")
	if err != nil {
		t.Fatal(err)
	}
	if m != (memInfo{available: 2000 << 10, slab: 300 << 10}) {
		t.Errorf("parseMemInfo = %+v", m)
	}
	if _, err := parseMemInfo("MemTotal: 1 kB\n"); err == nil {
		t.Error("parseMemInfo without MemAvailable and Slab: no error")
	}
}

func TestConfigDefaults(t *testing.T) {
	holder := []string{"wsbench", "recovery-hold"}
	c, err := Config{Holder: holder}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Flows: DefaultFlows, Agents: DefaultAgents, Shards: DefaultShards, RecoveryRate: DefaultRecoveryRate,
		Batch: defaultBatch, MaxPasses: defaultPasses, Holder: holder}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	for _, bad := range []Config{
		{},
		{Holder: holder, Agents: 3},
		{Holder: holder, Flows: -1},
		{Holder: holder, Flows: MaxFlows + 1},
		{Holder: holder, SendRate: -1},
		{Holder: holder, Batch: pktrate.MaxBatch + 1},
		{Holder: holder, RecoveryRate: -5},
	} {
		if _, err := bad.withDefaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", bad, err)
		}
	}
}
