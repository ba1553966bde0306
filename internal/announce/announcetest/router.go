// Package announcetest runs a BGP router for tests of the switch's
// speaker: a GoBGP server on a free loopback port that takes one passive
// session and whose RIB the test reads. It needs no privileges.
package announcetest

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/rs/zerolog"
)

// Addresses and AS numbers of the test topology: the router listens on
// RouterAddr, the switch connects from SwitchAddr (another loopback
// address, so that the next hop it announces is not the router's own).
var (
	RouterAddr = netip.MustParseAddr("127.0.0.1")
	SwitchAddr = netip.MustParseAddr("127.0.0.2")
)

const (
	RouterASN = 65000
	SwitchASN = 65010
	// Wait bounds every wait of a test: GoBGP makes its first connection
	// attempt 1.5 to 2 s after a peer is added.
	Wait = 10 * time.Second
)

// Router is a GoBGP server with one passive peer, the switch at
// SwitchAddr with SwitchASN. Srv is there for what the helpers do not do.
type Router struct {
	t    testing.TB
	Srv  *server.BgpServer
	Port uint16 // where it listens, on RouterAddr
}

// NewRouter starts a router, stopped when the test ends.
func NewRouter(t testing.TB) *Router {
	t.Helper()
	port := FreePort(t, RouterAddr)
	srv := server.NewBgpServer(server.LoggerOption(slog.New(zerolog.NewSlogHandler(Logger(t).With().Str("side", "router").Logger())), nil))
	go srv.Serve()
	t.Cleanup(srv.Stop)
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: RouterASN, RouterId: "198.18.0.1", ListenPort: int32(port), ListenAddresses: []string{RouterAddr.String()},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: SwitchAddr.String(), PeerAsn: SwitchASN},
		Transport: &api.Transport{PassiveMode: true},
		// After a reset it sends, the router takes a new connection after
		// a second (GoBGP's default: 30 s).
		Timers: &api.Timers{Config: &api.TimersConfig{IdleHoldTimeAfterReset: 1}},
	}}); err != nil {
		t.Fatal(err)
	}
	return &Router{t: t, Srv: srv, Port: port}
}

// FreePort returns a TCP port free on addr now, for a GoBGP server to
// listen on.
func FreePort(t testing.TB, addr netip.Addr) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// Connect makes the router connect to the switch at SwitchAddr:port, as
// well as accept its connections.
func (r *Router) Connect(port uint16) {
	r.t.Helper()
	if _, err := r.Srv.UpdatePeer(context.Background(), &api.UpdatePeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: SwitchAddr.String(), PeerAsn: SwitchASN},
		Transport: &api.Transport{RemotePort: uint32(port)},
		Timers:    &api.Timers{Config: &api.TimersConfig{IdleHoldTimeAfterReset: 1, ConnectRetry: 1}},
	}}); err != nil {
		r.t.Fatal(err)
	}
}

// Routes returns the router's IPv4 routes: prefix to next hop.
func (r *Router) Routes() map[netip.Prefix]netip.Addr {
	r.t.Helper()
	return Routes(r.t, r.Srv, apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC})
}

// WaitRoute waits until the router has a route to prefix via next hop
// want, or none when want is the zero Addr; it fails the test after Wait.
func (r *Router) WaitRoute(prefix netip.Prefix, want netip.Addr) {
	r.t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		got, ok := r.Routes()[prefix]
		if got == want && ok == want.IsValid() {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("router: route to %v via %v (present %v) after %v; want via %v", prefix, got, ok, Wait, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Routes returns the IPv4 routes of a table of srv: prefix to next hop.
func Routes(t testing.TB, srv *server.BgpServer, req apiutil.ListPathRequest) map[netip.Prefix]netip.Addr {
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

// Logger returns a logger whose lines go to the test's log if it fails
// (GoBGP's goroutines may still log after the test, when t.Log would
// panic).
func Logger(t testing.TB) zerolog.Logger {
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
