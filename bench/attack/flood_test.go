package attack

import (
	"errors"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"webswitch/bench/load"
	"webswitch/bench/site"
	"webswitch/bench/testbed"
	"webswitch/tcpfsm/header"
)

var (
	testSrcMAC = [6]byte{0x02, 0, 0, 0, 0, 0x50}
	testDstMAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	testVIP    = netip.MustParseAddr(testbed.VIP).As4()
)

// TestFloodSource checks many segments of each kind of flood as the switch
// parses them: valid checksums, to the VIP's port, from a source in the
// benchmarking range outside the test LAN; a SYN flood's are bare SYNs
// with the options of a real one, an ACK flood's are ACKs with random
// numbers, about half of them with 1 to maxACKPayload bytes of data.
func TestFloodSource(t *testing.T) {
	const n = 20000
	lan := netip.MustParsePrefix(testbed.LAN)
	for _, tc := range []struct {
		kind  FloodKind
		check func(t *testing.T, i int, tcp header.TCP)
	}{
		{FloodSYN, func(t *testing.T, i int, tcp header.TCP) {
			if tcp.Flags() != header.FlagSYN || tcp.Ack() != 0 || tcp.Window() != synWindow || len(tcp.Payload()) != 0 {
				t.Fatalf("SYN %d: TCP header % x", i, tcp)
			}
			var o header.SynOptions
			if err := header.ParseSynOptions(tcp.Options(), &o); err != nil {
				t.Fatal(err)
			}
			if want := (header.SynOptions{MSS: 1460, WScale: 7, WScaleOK: true, SACKOK: true}); o != want {
				t.Fatalf("SYN %d: options %+v, want %+v", i, o, want)
			}
		}},
		{FloodACK, func(t *testing.T, i int, tcp header.TCP) {
			var flags uint8 = header.FlagACK
			if len(tcp.Payload()) > 0 {
				flags |= header.FlagPSH
			}
			if tcp.Flags() != flags || tcp.Window() != ackWindow || len(tcp.Options()) != 0 || len(tcp.Payload()) > maxACKPayload {
				t.Fatalf("ACK %d: TCP header % x", i, tcp)
			}
		}},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			src := newFloodSource(tc.kind, testSrcMAC, testDstMAC, testVIP, 80, 1, 2)
			buf := make([]byte, src.maxLen)
			sources := map[netip.AddrPort]bool{}
			acks := map[uint32]bool{}
			halves := map[byte]int{} // by the second octet, 18 or 19
			lens := map[int]int{}    // by payload length
			for i := range n {
				b := src.next(buf)
				eth := header.Ethernet(b)
				if [6]byte(eth.Src()) != testSrcMAC || [6]byte(eth.Dst()) != testDstMAC || eth.Type() != header.EtherTypeIPv4 {
					t.Fatalf("segment %d: Ethernet header % x", i, b[:header.EthernetLen])
				}
				ip, err := header.ParseIPv4(b[header.EthernetLen:])
				if err != nil || !ip.ChecksumValid() || ip.Protocol() != header.ProtocolTCP || ip.Dst() != testVIP || len(ip) != len(b)-header.EthernetLen {
					t.Fatalf("segment %d: IPv4 header % x: %v", i, b[header.EthernetLen:], err)
				}
				tcp, err := header.ParseTCP(ip.Payload())
				if err != nil || !tcp.ChecksumValid(ip.Src(), ip.Dst()) || tcp.DstPort() != 80 {
					t.Fatalf("segment %d: TCP header % x: %v", i, ip.Payload(), err)
				}
				tc.check(t, i, tcp)
				addr := netip.AddrFrom4(ip.Src())
				if !sourceNet.Contains(addr) || lan.Contains(addr) || tcp.SrcPort() < minPort {
					t.Fatalf("segment %d: source %v:%d, want one in %v outside %v, port >= %d", i, addr, tcp.SrcPort(), sourceNet, lan, minPort)
				}
				sources[netip.AddrPortFrom(addr, tcp.SrcPort())] = true
				acks[tcp.Ack()] = true
				halves[ip.Src()[1]]++
				lens[len(tcp.Payload())]++
			}
			// 20000 draws from 130816 addresses and 64512 ports repeat
			// rarely; each half of the /15 gets about half of them.
			if len(sources) < n*99/100 {
				t.Errorf("%d distinct sources in %d segments", len(sources), n)
			}
			if halves[18] < n*45/100 || halves[19] < n*45/100 {
				t.Errorf("sources by second octet: %v, want about %d each of 18 and 19", halves, n/2)
			}
			if tc.kind != FloodACK {
				return
			}
			// The ACK numbers are random; half the ACKs carry data, of
			// every length from 1 to maxACKPayload, about n/200 each.
			if len(acks) < n*99/100 {
				t.Errorf("%d distinct ACK numbers in %d ACKs", len(acks), n)
			}
			if lens[0] < n*45/100 || lens[0] > n*55/100 {
				t.Errorf("%d of %d ACKs without data, want about half", lens[0], n)
			}
			for l := 1; l <= maxACKPayload; l++ {
				if lens[l] < n/200/2 {
					t.Errorf("%d ACKs with %d bytes of data, want about %d", lens[l], l, n/200)
				}
			}
		})
	}
}

func TestFloodKindText(t *testing.T) {
	for _, k := range []FloodKind{FloodSYN, FloodACK} {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got FloodKind
		if err := got.UnmarshalText(b); err != nil || got != k {
			t.Errorf("%v: round trip through %q: %v, %v", k, b, got, err)
		}
	}
	var k FloodKind
	for _, bad := range []string{"", "SYN", "rst", "syn "} {
		if err := k.UnmarshalText([]byte(bad)); !errors.Is(err, ErrConfig) {
			t.Errorf("UnmarshalText(%q): %v, want ErrConfig", bad, err)
		}
	}
	if _, err := FloodKind(0).MarshalText(); !errors.Is(err, ErrConfig) {
		t.Errorf("MarshalText of the zero kind: %v, want ErrConfig", err)
	}
}

// TestSourcesSkipLAN checks that the skipped start of the source range is
// exactly the test LAN.
func TestSourcesSkipLAN(t *testing.T) {
	lan := netip.MustParsePrefix(testbed.LAN)
	if lan.Addr() != sourceNet.Addr() || 1<<(32-lan.Bits()) != sourceSkip {
		t.Errorf("the first %d addresses of %v are not %v", sourceSkip, sourceNet, lan)
	}
}

func TestFloodSourceNoAllocs(t *testing.T) {
	for _, kind := range []FloodKind{FloodSYN, FloodACK} {
		src := newFloodSource(kind, testSrcMAC, testDstMAC, testVIP, 80, 1, 2)
		b := make([]byte, src.maxLen)
		if n := testing.AllocsPerRun(1000, func() { src.next(b) }); n != 0 {
			t.Errorf("%v: next allocates %v times per segment", kind, n)
		}
	}
}

func BenchmarkFloodSource(b *testing.B) {
	for _, kind := range []FloodKind{FloodSYN, FloodACK} {
		b.Run(kind.String(), func(b *testing.B) {
			src := newFloodSource(kind, testSrcMAC, testDstMAC, testVIP, 80, 1, 2)
			buf := make([]byte, src.maxLen)
			b.ReportAllocs()
			for b.Loop() {
				src.next(buf)
			}
		})
	}
}

func TestFloodConfigDefaults(t *testing.T) {
	tb := &testbed.Testbed{}
	got, err := FloodConfig{TB: tb}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := FloodConfig{TB: tb, Kind: FloodSYN, Host: "atk", Duration: 10 * time.Second, Batch: 256, Port: 80}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	for name, bad := range map[string]FloodConfig{
		"no testbed":     {},
		"bad kind":       {TB: tb, Kind: numFloodKinds},
		"negative rate":  {TB: tb, Rate: -1},
		"rate NaN":       {TB: tb, Rate: math.NaN()},
		"batch too big":  {TB: tb, Batch: 1025},
		"negative batch": {TB: tb, Batch: -1},
		"negative time":  {TB: tb, Duration: -time.Second},
	} {
		if _, err := bad.withDefaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: error %v, want ErrConfig", name, err)
		}
	}
}

func TestFloodTrialConfigDefaults(t *testing.T) {
	s := &site.Site{TB: &testbed.Testbed{}}
	got, err := FloodTrialConfig{Wsbench: "wsbench", URL: "http://x/"}.withDefaults(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Flood.TB != s.TB || got.Connections != 8 || got.Warmup != time.Second || got.Timeout != 2*time.Second || got.loadDuration() != 8*time.Second {
		t.Errorf("defaults %+v", got)
	}
	for name, bad := range map[string]FloodTrialConfig{
		"no wsbench":           {URL: "http://x/"},
		"no URL":               {Wsbench: "wsbench"},
		"negative connections": {Wsbench: "wsbench", URL: "http://x/", Connections: -1},
		"flood too short":      {Wsbench: "wsbench", URL: "http://x/", Flood: FloodConfig{Duration: 2 * time.Second}},
		"bad flood":            {Wsbench: "wsbench", URL: "http://x/", Flood: FloodConfig{Batch: -1}},
	} {
		if _, err := bad.withDefaults(s); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: error %v, want ErrConfig", name, err)
		}
	}
}

func TestSuccessRate(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    load.Result
		want float64
	}{
		{"all", load.Result{Requests: 100}, 1},
		{"some errors", load.Result{Requests: 990, Errors: map[string]uint64{load.ErrTimeout: 6, load.ErrConnect: 4}}, 0.99},
		{"none", load.Result{}, 0},
	} {
		if got := successRate(&tc.r); got != tc.want {
			t.Errorf("%s: successRate = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCountersDelta(t *testing.T) {
	before := map[int]map[string]any{
		0: {"syn_acks": 10.0, "frames_in": 100.0, "ring_drops": 0.0, "tx_dropped": 0.0, "flows": 10.0, "active_flows": 2.0,
			"drops": map[string]any{"no_flow": 3.0}},
		1: {"syn_acks": 5.0, "frames_in": 50.0, "ring_drops": 1.0, "tx_dropped": 0.0, "flows": 5.0, "active_flows": 1.0,
			"resets": 1.0, "recovery_asked": 64.0, "recovery_queries": 2.0},
	}
	after := map[int]map[string]any{
		0: {"syn_acks": 1010.0, "frames_in": 1200.0, "ring_drops": 30.0, "tx_dropped": 0.0, "flows": 60.0, "active_flows": 40.0,
			"resets": 400.0, "recovery_asked": 500.0, "recovery_queries": 16.0, "recovery_unanswered": 16.0,
			"drops": map[string]any{"no_flow": 3.0, "recovery_rate": 90.0, "no_owner": 500.0}},
		1: {"syn_acks": 2005.0, "frames_in": 2150.0, "ring_drops": 1.0, "tx_dropped": 0.0, "flows": 55.0, "active_flows": 45.0,
			"resets": 1.0, "recovery_asked": 564.0, "recovery_queries": 18.0,
			"drops": map[string]any{"recovery_rate": 10.0, "recovery_full": 7.0}},
	}
	res := FloodTrialResult{Flood: FloodResult{Seconds: 2}}
	res.countersDelta(before, after)
	want := FloodTrialResult{
		Flood: FloodResult{Seconds: 2}, SYNAcks: 3000, SYNAckRate: 1500, FramesIn: 3200, RingDrops: 30,
		Flows: 100, Resets: 400, ActiveFlowsBefore: 3, ActiveFlowsAfter: 85,
		RecoveryAsked: 1000, RecoveryAskedRate: 500, RecoveryQueries: 32, RecoveryQueryRate: 16, RecoveryUnanswered: 16,
		Drops: map[string]uint64{"recovery_rate": 100, "recovery_full": 7, "no_owner": 500},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("countersDelta (-want +got):\n%s", diff)
	}
}

// TestMeasure measures this process while it works: some CPU, and memory
// it touches.
func TestMeasure(t *testing.T) {
	pid := os.Getpid()
	var res FloodTrialResult
	var keep []byte
	err := res.measure(pid, []int{pid, pid}, func() error {
		keep = make([]byte, 32<<20)
		for end := time.Now().Add(3 * trialRSSEvery); time.Now().Before(end); {
			for i := 0; i < len(keep); i += 4096 {
				keep[i]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(keep)
	if len(res.Agents) != 2 || res.NumCPU < 1 || res.MachineCPU <= 0 {
		t.Fatalf("agents %+v, machine CPU %v of %d", res.Agents, res.MachineCPU, res.NumCPU)
	}
	for _, u := range append([]ProcUsage{res.Switch}, res.Agents...) {
		if u.PID != pid || u.CPU <= 0 || u.RSSGrowth() < 16<<20 || u.RSSAfter > u.RSSMax {
			t.Errorf("usage %+v: want pid %d, some CPU, at least 16 of the 32 MiB touched more RSS", u, pid)
		}
	}
	wantErr := errors.New("flood failed")
	if err := res.measure(pid, nil, func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("measure returned %v, want fn's error", err)
	}
}

func TestAgentPIDs(t *testing.T) {
	proc := func(pid int) *testbed.Proc { return &testbed.Proc{Cmd: &exec.Cmd{Process: &os.Process{Pid: pid}}} }
	s := &site.Site{Dir: t.TempDir(), Agents: []*testbed.Proc{proc(10), proc(20)}}
	if err := os.WriteFile(s.AgentPIDFile(1), []byte("4321\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := agentPIDs(s)
	if err != nil || !slices.Equal(got, []int{10, 4321}) {
		t.Errorf("agentPIDs: %v, %v; want [10 4321]: the started process, and the one the PID file names", got, err)
	}
	if err := os.WriteFile(s.AgentPIDFile(0), []byte("nonsense"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := agentPIDs(s); err == nil {
		t.Error("agentPIDs read a malformed PID file")
	}
}
