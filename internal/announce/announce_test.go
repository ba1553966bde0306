package announce

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/rs/zerolog"
)

// The tests run the speaker and a "router", a second GoBGP server, in one
// process on loopback: the router listens on a free port of 127.0.0.1 and
// takes a passive session from the switch, which connects from 127.0.0.2
// (so that the next hop it announces is not the router's own address).
var (
	routerAddr = netip.MustParseAddr("127.0.0.1")
	switchAddr = netip.MustParseAddr("127.0.0.2")
	vip        = netip.MustParsePrefix("198.18.0.100/32")
)

const (
	switchASN = 65010
	routerASN = 65000
	wait      = 10 * time.Second // bound on every wait: GoBGP's first connection attempt comes after 1.5 to 2 s
)

// router is the test's router: a GoBGP server with one passive peer, the
// switch.
type router struct {
	t    *testing.T
	srv  *server.BgpServer
	port uint16
}

func newRouter(t *testing.T) *router {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(routerAddr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close() // GoBGP listens there instead
	srv := server.NewBgpServer(server.LoggerOption(slog.New(zerolog.NewSlogHandler(testLogger(t).With().Str("side", "router").Logger())), nil))
	go srv.Serve()
	t.Cleanup(srv.Stop)
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: routerASN, RouterId: "198.18.0.1", ListenPort: int32(port), ListenAddresses: []string{routerAddr.String()},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: switchAddr.String(), PeerAsn: switchASN},
		Transport: &api.Transport{PassiveMode: true},
	}}); err != nil {
		t.Fatal(err)
	}
	return &router{t: t, srv: srv, port: port}
}

// routes returns the router's IPv4 routes: prefix to next hop.
func (r *router) routes() map[netip.Prefix]netip.Addr {
	r.t.Helper()
	return routes(r.t, r.srv, apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC})
}

// routes returns the IPv4 routes of a table of srv: prefix to next hop.
func routes(t *testing.T, srv *server.BgpServer, req apiutil.ListPathRequest) map[netip.Prefix]netip.Addr {
	t.Helper()
	out := make(map[netip.Prefix]netip.Addr)
	err := srv.ListPath(req, func(prefix bgp.NLRI, paths []*apiutil.Path) {
		p, err := netip.ParsePrefix(prefix.String())
		if err != nil {
			t.Errorf("prefix %q: %v", prefix, err)
			return
		}
		for _, path := range paths {
			for _, a := range path.Attrs {
				if nh, ok := a.(*bgp.PathAttributeNextHop); ok {
					out[p] = nh.Value
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitRoute waits until the router has the VIP with next hop want, or no
// route to it when want is the zero Addr.
func (r *router) waitRoute(want netip.Addr) {
	r.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got, ok := r.routes()[vip]
		if got == want && ok == want.IsValid() {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("router: route to %v via %v (present %v) after %v; want via %v", vip, got, ok, wait, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testLogger returns a logger whose lines go to the test's log if it
// fails. (GoBGP's goroutines may still log after the test, when t.Log
// would panic.)
func testLogger(t *testing.T) zerolog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			t.Logf("log:\n%s", buf.Bytes())
		}
	})
	return zerolog.New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})).With().Timestamp().Logger()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// startSpeaker starts the switch's speaker, peering with r.
func startSpeaker(t *testing.T, r *router, edit func(*Config)) *Speaker {
	t.Helper()
	cfg := Config{
		ASN: switchASN, RouterID: netip.MustParseAddr("198.18.0.2"), LocalAddress: switchAddr, Prefix: vip,
		HoldTime: 3 * time.Second, Interval: 10 * time.Millisecond,
		Peers: []Peer{{Address: routerAddr, Port: r.port, ASN: routerASN}},
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := Start(cfg, testLogger(t).With().Str("side", "switch").Logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// waitUp waits until every peer's session is established.
func waitUp(t *testing.T, s *Speaker) Status {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		st, err := s.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		up := true
		for _, p := range st.Peers {
			up = up && p.Up
		}
		if up {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions not up after %v: %+v", wait, st.Peers)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAnnounceWithdraw: the router sees the VIP/32 with the switch's
// address as next hop once announced, and not once withdrawn; announcing
// twice is one change.
func TestAnnounceWithdraw(t *testing.T) {
	r := newRouter(t)
	s := startSpeaker(t, r, nil)
	st := waitUp(t, s)
	want := PeerStatus{Address: netip.AddrPortFrom(routerAddr, r.port), ASN: routerASN, State: "established", Up: true}
	if len(st.Peers) != 1 || st.Peers[0] != want || st.Announced || st.Changes != 0 {
		t.Fatalf("status before announcing: %+v, want peer %+v and nothing announced", st, want)
	}
	if got := r.routes(); len(got) != 0 {
		t.Fatalf("router has %v before the announcement", got)
	}
	// The router sends a route: the switch receives it and keeps none.
	learned := netip.MustParsePrefix("10.0.0.0/8")
	nlri, _ := bgp.NewIPAddrPrefix(learned)
	nh, _ := bgp.NewPathAttributeNextHop(routerAddr)
	if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{
		Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh},
	}}}); err != nil {
		t.Fatal(err)
	}
	adjIn := apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: routerAddr.String(), Family: bgp.RF_IPv4_UC}
	for deadline := time.Now().Add(wait); routes(t, s.srv, adjIn)[learned] != routerAddr; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the switch did not receive the router's %v", learned)
		}
	}

	for range 2 {
		if err := s.Announce(); err != nil {
			t.Fatal(err)
		}
	}
	r.waitRoute(switchAddr)
	if err := s.Withdraw(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitRoute(netip.Addr{})
	if err := s.Announce(); err != nil {
		t.Fatal(err)
	}
	r.waitRoute(switchAddr)
	st, err := s.Status(context.Background())
	if err != nil || !st.Announced || st.Changes != 3 || st.NextHop != switchAddr || st.Prefix != vip {
		t.Errorf("status = %+v, %v; want announced after 3 changes, next hop %v", st, err, switchAddr)
	}
	global := routes(t, s.srv, apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC})
	if len(global) != 1 || global[vip] != switchAddr {
		t.Errorf("the switch's routes: %v, want only its own VIP", global)
	}

	s.Stop() // withdraws, then closes the session
	r.waitRoute(netip.Addr{})
	if st, _ := s.Status(context.Background()); st.Announced || !st.Left {
		t.Errorf("status after Stop = %+v, want withdrawn for good", st)
	}
}

// TestFollow: the VIP follows serving, and after Leave it stays withdrawn
// whatever serving says, and Announce refuses.
func TestFollow(t *testing.T) {
	r := newRouter(t)
	s := startSpeaker(t, r, nil)
	var serving atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Follow(ctx, serving.Load)
	}()
	defer func() { cancel(); <-done }()
	waitUp(t, s)

	serving.Store(true)
	r.waitRoute(switchAddr)
	serving.Store(false)
	r.waitRoute(netip.Addr{})
	serving.Store(true)
	r.waitRoute(switchAddr)

	if err := s.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitRoute(netip.Addr{})
	// serving is still true: Follow runs a few more rounds and must not
	// announce again.
	changes := s.changes.Load()
	time.Sleep(20 * s.cfg.Interval)
	if st, _ := s.Status(context.Background()); st.Announced || !st.Left || st.Changes != changes {
		t.Errorf("status after Leave = %+v, want withdrawn for good and no change since (%d)", st, changes)
	}
	if _, ok := r.routes()[vip]; ok {
		t.Error("router has the VIP again after Leave")
	}
	if err := s.Announce(); !errors.Is(err, ErrLeft) {
		t.Errorf("Announce after Leave = %v, want ErrLeft", err)
	}
}

// TestBFDConfigured: a peer with bfd has a BFD session (down while the
// router runs none), one without has none. No router: nothing to peer
// with, the BGP session stays down.
func TestBFDConfigured(t *testing.T) {
	s := startSpeaker(t, &router{t: t, port: 1}, func(c *Config) {
		c.Peers = []Peer{{Address: routerAddr, Port: 1, ASN: routerASN, BFD: true}, {Address: netip.MustParseAddr("127.0.0.3"), Port: 1, ASN: routerASN}}
	})
	deadline := time.Now().Add(wait)
	for {
		st, err := s.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Peers[0].BFD != "" {
			if st.Peers[0].Up || st.Peers[1].BFD != "" {
				t.Errorf("peers %+v: want the first down with BFD, the second without", st.Peers)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no BFD state after %v: %+v", wait, st.Peers)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStartRefusesIPv6: the next hop and the prefix are IPv4.
func TestStartRefusesIPv6(t *testing.T) {
	_, err := Start(Config{ASN: switchASN, LocalAddress: netip.MustParseAddr("::1"), Prefix: vip, HoldTime: 3 * time.Second}, zerolog.Nop())
	if err == nil {
		t.Fatal("Start with an IPv6 local address succeeded")
	}
}
