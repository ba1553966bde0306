package attack

import (
	"errors"
	"math"
	"net/netip"
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

// TestSYNSource checks many SYNs as the switch parses them: valid
// checksums, a bare SYN to the VIP's port with the options of a real one,
// and a source in the benchmarking range outside the test LAN.
func TestSYNSource(t *testing.T) {
	const n = 20000
	src := newSYNSource(testSrcMAC, testDstMAC, testVIP, 80, 1, 2)
	lan := netip.MustParsePrefix(testbed.LAN)
	b := make([]byte, src.seg.Len())
	sources := map[netip.AddrPort]bool{}
	halves := map[byte]int{} // by the second octet, 18 or 19
	for i := range n {
		src.next(b)
		eth := header.Ethernet(b)
		if [6]byte(eth.Src()) != testSrcMAC || [6]byte(eth.Dst()) != testDstMAC || eth.Type() != header.EtherTypeIPv4 {
			t.Fatalf("SYN %d: Ethernet header % x", i, b[:header.EthernetLen])
		}
		ip, err := header.ParseIPv4(b[header.EthernetLen:])
		if err != nil || !ip.ChecksumValid() || ip.Protocol() != header.ProtocolTCP || ip.Dst() != testVIP {
			t.Fatalf("SYN %d: IPv4 header % x: %v", i, b[header.EthernetLen:], err)
		}
		tcp, err := header.ParseTCP(ip.Payload())
		if err != nil || !tcp.ChecksumValid(ip.Src(), ip.Dst()) {
			t.Fatalf("SYN %d: TCP header % x: %v", i, ip.Payload(), err)
		}
		if tcp.Flags() != header.FlagSYN || tcp.DstPort() != 80 || tcp.Ack() != 0 || tcp.Window() != synWindow || len(tcp.Payload()) != 0 {
			t.Fatalf("SYN %d: TCP header % x", i, tcp)
		}
		var o header.SynOptions
		if err := header.ParseSynOptions(tcp.Options(), &o); err != nil {
			t.Fatal(err)
		}
		if want := (header.SynOptions{MSS: 1460, WScale: 7, WScaleOK: true, SACKOK: true}); o != want {
			t.Fatalf("SYN %d: options %+v, want %+v", i, o, want)
		}
		addr := netip.AddrFrom4(ip.Src())
		if !sourceNet.Contains(addr) || lan.Contains(addr) || tcp.SrcPort() < minPort {
			t.Fatalf("SYN %d: source %v:%d, want one in %v outside %v, port >= %d", i, addr, tcp.SrcPort(), sourceNet, lan, minPort)
		}
		sources[netip.AddrPortFrom(addr, tcp.SrcPort())] = true
		halves[ip.Src()[1]]++
	}
	// 20000 draws from 130816 addresses and 64512 ports repeat rarely; each
	// half of the /15 gets about half of them.
	if len(sources) < n*99/100 {
		t.Errorf("%d distinct sources in %d SYNs", len(sources), n)
	}
	if halves[18] < n*45/100 || halves[19] < n*45/100 {
		t.Errorf("sources by second octet: %v, want about %d each of 18 and 19", halves, n/2)
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

func TestSYNSourceNoAllocs(t *testing.T) {
	src := newSYNSource(testSrcMAC, testDstMAC, testVIP, 80, 1, 2)
	b := make([]byte, src.seg.Len())
	if n := testing.AllocsPerRun(1000, func() { src.next(b) }); n != 0 {
		t.Errorf("next allocates %v times per SYN", n)
	}
}

func BenchmarkSYNSource(b *testing.B) {
	src := newSYNSource(testSrcMAC, testDstMAC, testVIP, 80, 1, 2)
	buf := make([]byte, src.seg.Len())
	b.ReportAllocs()
	for b.Loop() {
		src.next(buf)
	}
}

func TestSYNFloodConfigDefaults(t *testing.T) {
	tb := &testbed.Testbed{}
	got, err := SYNFloodConfig{TB: tb}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := SYNFloodConfig{TB: tb, Host: "atk", Duration: 10 * time.Second, Batch: 256, Port: 80}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	for name, bad := range map[string]SYNFloodConfig{
		"no testbed":     {},
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

func TestSYNFloodTrialConfigDefaults(t *testing.T) {
	s := &site.Site{TB: &testbed.Testbed{}}
	got, err := SYNFloodTrialConfig{Wsbench: "wsbench", URL: "http://x/"}.withDefaults(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Flood.TB != s.TB || got.Connections != 8 || got.Warmup != time.Second || got.Timeout != 2*time.Second || got.loadDuration() != 8*time.Second {
		t.Errorf("defaults %+v", got)
	}
	for name, bad := range map[string]SYNFloodTrialConfig{
		"no wsbench":           {URL: "http://x/"},
		"no URL":               {Wsbench: "wsbench"},
		"negative connections": {Wsbench: "wsbench", URL: "http://x/", Connections: -1},
		"flood too short":      {Wsbench: "wsbench", URL: "http://x/", Flood: SYNFloodConfig{Duration: 2 * time.Second}},
		"bad flood":            {Wsbench: "wsbench", URL: "http://x/", Flood: SYNFloodConfig{Batch: -1}},
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
	shard := func(synAcks, framesIn, ringDrops, flows, active float64) map[string]any {
		return map[string]any{"syn_acks": synAcks, "frames_in": framesIn, "ring_drops": ringDrops,
			"tx_dropped": 0.0, "flows": flows, "active_flows": active}
	}
	before := map[int]map[string]any{0: shard(10, 100, 0, 10, 2), 1: shard(5, 50, 1, 5, 1)}
	after := map[int]map[string]any{0: shard(1010, 1200, 30, 60, 40), 1: shard(2005, 2150, 1, 55, 45)}
	res := SYNFloodTrialResult{Flood: SYNFloodResult{Seconds: 2}}
	res.countersDelta(before, after)
	want := SYNFloodTrialResult{
		Flood: SYNFloodResult{Seconds: 2}, SYNAcks: 3000, SYNAckRate: 1500, FramesIn: 3200, RingDrops: 30,
		Flows: 100, ActiveFlowsBefore: 3, ActiveFlowsAfter: 85,
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("countersDelta (-want +got):\n%s", diff)
	}
}
