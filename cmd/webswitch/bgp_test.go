package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rs/zerolog"

	"webswitch/conf"
	"webswitch/internal/announce"
	"webswitch/internal/announce/announcetest"
	"webswitch/shard"
)

// fakeBGP is a BGP speaker with fixed figures: two routers, one up.
type fakeBGP struct{ err error }

func (f fakeBGP) Status(context.Context) (announce.Status, error) {
	return announce.Status{
		Prefix: netip.MustParsePrefix("198.18.0.100/32"), NextHop: netip.MustParseAddr("198.18.0.2"), Announced: true, Changes: 3,
		Peers: []announce.PeerStatus{
			{Address: netip.MustParseAddrPort("198.18.0.1:179"), ASN: 65000, State: "established", Up: true, BFD: "up"},
			{Address: netip.MustParseAddrPort("198.18.0.3:179"), ASN: 65000, State: "active"},
		},
	}, f.err
}

// TestBGPAdmin: /metrics has the sessions, the announcement and its
// changes; /bgp shows the speaker's state, and ctl bgp prints it; neither
// exists without [bgp].
func TestBGPAdmin(t *testing.T) {
	h := adminHandler(&fakePath{}, nil, nil, fakeBGP{})
	code, body := get(t, h, "GET", "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`webswitch_bgp_session_up{peer="198.18.0.1:179"} 1`,
		`webswitch_bgp_session_up{peer="198.18.0.3:179"} 0`,
		"webswitch_bgp_announced 1",
		"webswitch_bgp_announcement_changes_total 3",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	code, body = get(t, h, "GET", "/bgp")
	var st announce.Status
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/bgp: %d %s", code, body)
	}
	want, _ := fakeBGP{}.Status(context.Background())
	if diff := cmp.Diff(want, st, cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}, netip.Prefix{})); diff != "" {
		t.Errorf("/bgp (-want +got):\n%s", diff)
	}

	if code, _ := get(t, adminHandler(&fakePath{}, nil, nil, fakeBGP{err: errors.New("speaker stopped")}), "GET", "/bgp"); code != 503 {
		t.Errorf("/bgp of a speaker that fails: %d, want 503", code)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	var out, errOut bytes.Buffer
	if code := ctl([]string{"-admin", strings.TrimPrefix(srv.URL, "http://"), "bgp"}, &out, &errOut); code != 0 {
		t.Fatalf("ctl bgp: status %d: %s", code, errOut.String())
	}
	for _, want := range []string{"VIP 198.18.0.100/32 via 198.18.0.2: announced (3 changes)", "198.18.0.1:179  65000  established  up", "198.18.0.3:179  65000  active       -"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ctl bgp lacks %q:\n%s", want, out.String())
		}
	}

	plain := adminHandler(&fakePath{}, nil, nil, nil)
	if code, _ := get(t, plain, "GET", "/bgp"); code != 404 {
		t.Errorf("/bgp without [bgp]: %d, want 404", code)
	}
	if _, body := get(t, plain, "GET", "/metrics"); strings.Contains(body, "webswitch_bgp_") {
		t.Error("/metrics without [bgp] has BGP series")
	}
}

// TestSpeakerConfig: [bgp] becomes the speaker's configuration, the VIP/32
// with the local address as next hop, by default the interface's address.
func TestSpeakerConfig(t *testing.T) {
	c, err := conf.LoadSwitch("../../conf/testdata/switch-bgp.toml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := speakerConfig("switch.toml", c)
	if err != nil {
		t.Fatal(err)
	}
	want := &announce.Config{
		ASN: 65010, RouterID: netip.MustParseAddr("198.18.0.2"), LocalAddress: netip.MustParseAddr("198.18.0.2"),
		Prefix: netip.MustParsePrefix("198.18.0.100/32"), ListenPort: 179, HoldTime: 3 * time.Second,
		Peers: []announce.Peer{
			{Address: netip.MustParseAddr("198.18.0.1"), Port: 1179, ASN: 65000, BFD: true},
			{Address: netip.MustParseAddr("198.18.0.3"), Port: 179, ASN: 65010},
		},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("speakerConfig (-want +got):\n%s", diff)
	}

	c.BGP.LocalAddress = netip.Addr{}
	c.Switch.Interface = "lo"
	if got, err := speakerConfig("switch.toml", c); err != nil || got.LocalAddress != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("local address of lo: %v, %v; want 127.0.0.1", got, err)
	}
	c.Switch.Interface = "nowhere0"
	if _, err := speakerConfig("switch.toml", c); err == nil || !strings.HasPrefix(err.Error(), "switch.toml: bgp.local_address: ") {
		t.Errorf("no interface: %v, want an error at bgp.local_address", err)
	}

	c.BGP = nil
	if got, err := speakerConfig("switch.toml", c); got != nil || err != nil {
		t.Errorf("without [bgp]: %v, %v; want nothing", got, err)
	}
}

// drainPath is a data path for drain: it records when Drain is called and
// has flows until the test says there are none.
type drainPath struct {
	cfg     shard.Config
	drained chan struct{}
	flows   atomic.Int64
	frames  atomic.Uint64
}

func (d *drainPath) Config() *shard.Config { return &d.cfg }
func (d *drainPath) Drain()                { close(d.drained) }
func (d *drainPath) ActiveFlows() int64    { return d.flows.Load() }
func (d *drainPath) FramesIn() uint64      { return d.frames.Load() }

// TestDrainWithdrawsFirst: on SIGTERM the VIP is withdrawn, and the
// withdrawal sent to the router, before the switch refuses new
// connections; the flows in the table go on after it (the drain waits for
// them), and the VIP is not announced again although the switch still
// says it serves.
func TestDrainWithdrawsFirst(t *testing.T) {
	r := announcetest.NewRouter(t)
	vip := netip.MustParsePrefix("198.18.0.100/32")
	cl, err := startCluster(&announce.Config{
		ASN: announcetest.SwitchASN, LocalAddress: announcetest.SwitchAddr, Prefix: vip, HoldTime: 3 * time.Second,
		Peers:    []announce.Peer{{Address: announcetest.RouterAddr, Port: r.Port, ASN: announcetest.RouterASN}},
		Interval: 10 * time.Millisecond,
	}, announcetest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.stop()
	cl.settle = 0
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl.follow(ctx, func() bool { return true })
	}()
	r.WaitRoute(vip, announcetest.SwitchAddr)

	dp := &drainPath{cfg: shard.Config{DrainTimeout: time.Minute}, drained: make(chan struct{})}
	dp.flows.Store(2)
	term := make(chan os.Signal, 1)
	stopped := make(chan struct{})
	var atDrain announce.Status
	leave := func() {
		cl.leave()
		atDrain, _ = cl.sp.Status(context.Background())
	}
	go drain(dp, leave, 0, term, func() { close(stopped) }, announcetest.Logger(t))
	term <- syscall.SIGTERM
	select {
	case <-dp.drained:
	case <-time.After(announcetest.Wait):
		t.Fatal("the switch did not drain")
	}
	if atDrain.Announced || !atDrain.Left || atDrain.Changes != 2 {
		t.Errorf("speaker when the switch started refusing connections: %+v; want the VIP withdrawn for good", atDrain)
	}
	r.WaitRoute(vip, netip.Addr{})
	select {
	case <-stopped:
		t.Fatal("the drain stopped with flows in the table")
	case <-time.After(300 * time.Millisecond): // a few of drain's polls
	}
	if st, _ := cl.sp.Status(context.Background()); st.Announced || st.Changes != 2 {
		t.Errorf("speaker during the drain: %+v; want the VIP still withdrawn", st)
	}
	dp.flows.Store(0)
	select {
	case <-stopped:
	case <-time.After(announcetest.Wait):
		t.Fatal("the drain did not stop once the flows ended")
	}
}

// TestDrainQuiet: a switch that withdrew the VIP ends its drain once no
// frame has come for the quiet time, its flows still in the table (the
// routers send them to the other switches), not at drain_timeout; frames
// that keep coming keep it draining.
func TestDrainQuiet(t *testing.T) {
	dp := &drainPath{cfg: shard.Config{DrainTimeout: time.Minute}, drained: make(chan struct{})}
	dp.flows.Store(5)
	term := make(chan os.Signal, 1)
	stopped := make(chan struct{})
	const quiet = 300 * time.Millisecond
	go drain(dp, func() {}, quiet, term, func() { close(stopped) }, zerolog.Nop())
	term <- syscall.SIGTERM
	start := time.Now()
	for range 6 { // frames for 600 ms: longer than quiet
		time.Sleep(100 * time.Millisecond)
		dp.frames.Add(1)
	}
	select {
	case <-stopped:
		if d := time.Since(start); d < 600*time.Millisecond {
			t.Errorf("stopped %v after the signal, while frames still came", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the drain did not end without frames; want it to end after the quiet time, not at drain_timeout")
	}
}
