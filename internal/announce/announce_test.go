package announce

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/rs/zerolog"

	"webswitch/internal/announce/announcetest"
)

// The tests run the speaker and a router (announcetest) in one process on
// loopback.
var vip = netip.MustParsePrefix("198.18.0.100/32")

// startSpeaker starts the switch's speaker, peering with r.
func startSpeaker(t *testing.T, r *announcetest.Router, edit func(*Config)) *Speaker {
	t.Helper()
	cfg := Config{
		ASN: announcetest.SwitchASN, RouterID: netip.MustParseAddr("198.18.0.2"), LocalAddress: announcetest.SwitchAddr, Prefix: vip,
		HoldTime: 3 * time.Second, Interval: 10 * time.Millisecond,
		Peers: []Peer{{Address: announcetest.RouterAddr, Port: r.Port, ASN: announcetest.RouterASN}},
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := Start(cfg, announcetest.Logger(t).With().Str("side", "switch").Logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// waitUp waits until every peer's session is established.
func waitUp(t *testing.T, s *Speaker) Status {
	t.Helper()
	deadline := time.Now().Add(announcetest.Wait)
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
			t.Fatalf("sessions not up after %v: %+v", announcetest.Wait, st.Peers)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAnnounceWithdraw: the router sees the VIP/32 with the switch's
// address as next hop once announced, and not once withdrawn; announcing
// twice is one change.
func TestAnnounceWithdraw(t *testing.T) {
	r := announcetest.NewRouter(t)
	s := startSpeaker(t, r, nil)
	st := waitUp(t, s)
	want := PeerStatus{Address: netip.AddrPortFrom(announcetest.RouterAddr, r.Port), ASN: announcetest.RouterASN, State: "established", Up: true}
	if len(st.Peers) != 1 || st.Peers[0] != want || st.Announced || st.Changes != 0 {
		t.Fatalf("status before announcing: %+v, want peer %+v and nothing announced", st, want)
	}
	if got := r.Routes(); len(got) != 0 {
		t.Fatalf("router has %v before the announcement", got)
	}
	// The router sends a route: the switch receives it and keeps none.
	learned := netip.MustParsePrefix("10.0.0.0/8")
	nlri, _ := bgp.NewIPAddrPrefix(learned)
	nh, _ := bgp.NewPathAttributeNextHop(announcetest.RouterAddr)
	if _, err := r.Srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{
		Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh},
	}}}); err != nil {
		t.Fatal(err)
	}
	adjIn := apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: announcetest.RouterAddr.String(), Family: bgp.RF_IPv4_UC}
	for deadline := time.Now().Add(announcetest.Wait); announcetest.Routes(t, s.srv, adjIn)[learned] != announcetest.RouterAddr; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the switch did not receive the router's %v", learned)
		}
	}

	for range 2 {
		if err := s.Announce(); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitRoute(vip, announcetest.SwitchAddr)
	if err := s.Withdraw(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.WaitRoute(vip, netip.Addr{})
	if err := s.Announce(); err != nil {
		t.Fatal(err)
	}
	r.WaitRoute(vip, announcetest.SwitchAddr)
	st, err := s.Status(context.Background())
	if err != nil || !st.Announced || st.Changes != 3 || st.NextHop != announcetest.SwitchAddr || st.Prefix != vip {
		t.Errorf("status = %+v, %v; want announced after 3 changes, next hop %v", st, err, announcetest.SwitchAddr)
	}
	global := announcetest.Routes(t, s.srv, apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC})
	if len(global) != 1 || global[vip] != announcetest.SwitchAddr {
		t.Errorf("the switch's routes: %v, want only its own VIP", global)
	}

	s.Stop() // withdraws, then closes the session
	r.WaitRoute(vip, netip.Addr{})
	if st, _ := s.Status(context.Background()); st.Announced || !st.Left {
		t.Errorf("status after Stop = %+v, want withdrawn for good", st)
	}
}

// TestFollow: the VIP follows serving, and after Leave it stays withdrawn
// whatever serving says, and Announce refuses.
func TestFollow(t *testing.T) {
	r := announcetest.NewRouter(t)
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
	r.WaitRoute(vip, announcetest.SwitchAddr)
	serving.Store(false)
	r.WaitRoute(vip, netip.Addr{})
	serving.Store(true)
	r.WaitRoute(vip, announcetest.SwitchAddr)

	if err := s.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.WaitRoute(vip, netip.Addr{})
	// serving is still true: Follow runs a few more rounds and must not
	// announce again.
	changes := s.changes.Load()
	time.Sleep(20 * s.cfg.Interval)
	if st, _ := s.Status(context.Background()); st.Announced || !st.Left || st.Changes != changes {
		t.Errorf("status after Leave = %+v, want withdrawn for good and no change since (%d)", st, changes)
	}
	if _, ok := r.Routes()[vip]; ok {
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
	s := startSpeaker(t, &announcetest.Router{Port: 1}, func(c *Config) {
		c.Peers = []Peer{{Address: announcetest.RouterAddr, Port: 1, ASN: announcetest.RouterASN, BFD: true}, {Address: netip.MustParseAddr("127.0.0.3"), Port: 1, ASN: announcetest.RouterASN}}
	})
	deadline := time.Now().Add(announcetest.Wait)
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
			t.Fatalf("no BFD state after %v: %+v", announcetest.Wait, st.Peers)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStartRefusesIPv6: the next hop and the prefix are IPv4.
func TestStartRefusesIPv6(t *testing.T) {
	_, err := Start(Config{ASN: announcetest.SwitchASN, LocalAddress: netip.MustParseAddr("::1"), Prefix: vip, HoldTime: 3 * time.Second}, zerolog.Nop())
	if err == nil {
		t.Fatal("Start with an IPv6 local address succeeded")
	}
}

// TestBFDRenewed: when the BGP session with a BFD peer goes down, its BFD
// session is made anew (the GoBGP 4.8 work-around, see watchBFD), and the
// BGP session comes back. (The router here runs no BFD: the switch's BFD
// session stays down and never resets the BGP session itself.)
func TestBFDRenewed(t *testing.T) {
	r := announcetest.NewRouter(t)
	s := startSpeaker(t, r, func(c *Config) { c.Peers[0].BFD = true })
	waitUp(t, s)
	if err := r.Srv.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: announcetest.SwitchAddr.String(), Communication: "test"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(announcetest.Wait); s.bfdRenews.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the BFD session was not renewed after the BGP session went down")
		}
	}
	st := waitUp(t, s)
	if st.Peers[0].BFD == "" {
		t.Errorf("peer %+v: no BFD state after the renewal", st.Peers[0])
	}
	var tx uint32
	if err := s.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) { tx = p.Bfd.GetDesiredMinimumTxInterval() }); err != nil {
		t.Fatal(err)
	}
	if want := uint32(BFDInterval/time.Microsecond) + 1; tx != want {
		t.Errorf("BFD transmit interval %d µs after one renewal, want %d", tx, want)
	}
}

// TestListen: with a listen port, a router that connects gets the session
// (here the switch's own attempts go to a port where nobody listens).
func TestListen(t *testing.T) {
	r := announcetest.NewRouter(t)
	port := announcetest.FreePort(t, announcetest.SwitchAddr)
	s := startSpeaker(t, r, func(c *Config) {
		c.ListenPort = port
		c.Peers[0].Port = announcetest.FreePort(t, announcetest.RouterAddr)
	})
	r.Connect(port)
	waitUp(t, s)
	if err := s.Announce(); err != nil {
		t.Fatal(err)
	}
	r.WaitRoute(vip, announcetest.SwitchAddr)
}
