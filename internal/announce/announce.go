// Package announce is the switch's BGP speaker: GoBGP (github.com/osrg/gobgp/v4)
// run as a library, which connects to the routers in front of a cluster of
// switches and announces one prefix, the VIP/32, with the switch's own
// address as next hop, while the switch can serve (Follow). It writes no
// BGP of its own, connects to its peers (and listens for them only when
// asked: Config.ListenPort), takes no route from them, and logs through
// the switch's zerolog logger.
//
// Guarantee: when Withdraw or Leave returns nil, every peer whose session
// carried the prefix has been sent its withdrawal (or its session is gone,
// which takes the prefix with it); after Leave, the Speaker never announces
// the prefix again.
package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/rs/zerolog"
)

// Config is what the speaker announces, and to whom.
type Config struct {
	// ASN is the switch's AS number.
	ASN uint32
	// RouterID is the switch's BGP identifier; the zero Addr means
	// LocalAddress.
	RouterID netip.Addr
	// LocalAddress is the switch's IPv4 address towards its peers: the
	// source of the sessions and the next hop announced (required).
	LocalAddress netip.Addr
	// Prefix is what is announced: the VIP/32.
	Prefix netip.Prefix
	// ListenPort, when not 0, makes the speaker accept its peers'
	// connections on LocalAddress:ListenPort as well as connect to them.
	// Zero: no listener.
	ListenPort uint16
	// HoldTime is the hold time offered, in whole seconds, at least 3s;
	// keepalives go every third of it.
	HoldTime time.Duration
	// Peers are the routers (at least one).
	Peers []Peer
	// ConnectRetry is the wait between two connection attempts to a peer
	// that is not up, in whole seconds; GoBGP waits at least 2s (and that
	// long before the first attempt). Zero means DefaultConnectRetry.
	ConnectRetry time.Duration
	// Interval is how often Follow asks whether the switch serves. Zero
	// means DefaultInterval.
	Interval time.Duration
}

// Peer is one router.
type Peer struct {
	Address netip.Addr
	Port    uint16 // zero: 179
	ASN     uint32 // the switch's own makes an iBGP session
	// BFD runs BFD (RFC 5880, single hop) with the peer, at BFDInterval
	// times BFDMultiplier.
	BFD bool
}

// Defaults and fixed parameters.
const (
	DefaultConnectRetry = 3 * time.Second
	DefaultInterval     = 200 * time.Millisecond
	// BFDInterval is the BFD transmit and receive interval; a peer is
	// down after BFDMultiplier intervals without a packet (0.9 s).
	BFDInterval   = 300 * time.Millisecond
	BFDMultiplier = 3
	// sentTimeout bounds Withdraw's wait for the withdrawal to leave: a
	// session that cannot send for this long is left to its hold timer.
	sentTimeout = 2 * time.Second
	// sentPoll is how often Withdraw looks at the peers' counters.
	sentPoll = 5 * time.Millisecond
)

// ErrLeft is what Announce returns after Leave.
var ErrLeft = errors.New("announce: the switch left: no more announcements")

// Speaker is a running BGP speaker. Its methods may be called from any
// goroutine.
type Speaker struct {
	cfg Config
	srv *server.BgpServer
	log zerolog.Logger

	mu        sync.Mutex // serialises announcements and withdrawals
	announced atomic.Bool
	left      atomic.Bool
	changes   atomic.Uint64
	stopOnce  sync.Once

	peers     map[netip.Addr]*api.Peer // as added, by address: what renewBFD updates
	bfdRenews atomic.Uint64
	unwatch   context.CancelFunc // ends watchBFD
}

// Start starts a speaker for cfg and adds its peers: it connects to them
// in the background. Nothing is announced until Announce or Follow.
func Start(cfg Config, log zerolog.Logger) (*Speaker, error) {
	if cfg.ConnectRetry == 0 {
		cfg.ConnectRetry = DefaultConnectRetry
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if !cfg.RouterID.IsValid() {
		cfg.RouterID = cfg.LocalAddress
	}
	if !cfg.LocalAddress.Is4() || !cfg.Prefix.Addr().Is4() {
		return nil, fmt.Errorf("announce: local address %v and prefix %v must be IPv4", cfg.LocalAddress, cfg.Prefix)
	}
	log = log.With().Str("component", "bgp").Logger()
	// GoBGP's levels are sensible: sessions up and down at info, each
	// message at debug. The logger's own level filters them.
	srv := server.NewBgpServer(server.LoggerOption(slog.New(zerolog.NewSlogHandler(log)), nil))
	go srv.Serve()
	s := &Speaker{cfg: cfg, srv: srv, log: log, peers: make(map[netip.Addr]*api.Peer), unwatch: func() {}}
	if err := s.start(); err != nil {
		s.unwatch()
		srv.Stop()
		return nil, fmt.Errorf("announce: %w", err)
	}
	return s, nil
}

// start configures the server: global settings, no route accepted from
// the peers, the peers.
func (s *Speaker) start() error {
	ctx := context.Background()
	global := &api.Global{Asn: s.cfg.ASN, RouterId: s.cfg.RouterID.String(), ListenPort: -1} // -1: no listener
	if s.cfg.ListenPort != 0 {
		global.ListenPort, global.ListenAddresses = int32(s.cfg.ListenPort), []string{s.cfg.LocalAddress.String()}
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		return err
	}
	// The global import policy sees the switch's own path too: reject only
	// what the peers send.
	reject := func(rt api.Conditions_RouteType) *api.Statement {
		return &api.Statement{Conditions: &api.Conditions{RouteType: rt}, Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT}}
	}
	policy := &api.Policy{Name: "webswitch-no-learned-routes", Statements: []*api.Statement{
		reject(api.Conditions_ROUTE_TYPE_EXTERNAL), reject(api.Conditions_ROUTE_TYPE_INTERNAL),
	}}
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: policy}); err != nil {
		return err
	}
	if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: policy.Name}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
	}}); err != nil {
		return err
	}
	hold := uint64(s.cfg.HoldTime / time.Second)
	for _, p := range s.cfg.Peers {
		port := uint32(p.Port)
		if port == 0 {
			port = bgp.BGP_PORT
		}
		peer := &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN},
			Transport: &api.Transport{LocalAddress: s.cfg.LocalAddress.String(), RemotePort: port},
			Timers: &api.Timers{Config: &api.TimersConfig{
				HoldTime: hold, KeepaliveInterval: max(1, hold/3),
				ConnectRetry:           uint64(s.cfg.ConnectRetry / time.Second),
				IdleHoldTimeAfterReset: 1,
			}},
			AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{
				Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true,
			}}},
		}
		if p.BFD {
			us := uint32(BFDInterval / time.Microsecond)
			peer.Bfd = &api.BfdPeerConfig{Enabled: true, DesiredMinimumTxInterval: us, RequiredMinimumReceive: us, DetectionMultiplier: BFDMultiplier}
		}
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
			return fmt.Errorf("peer %v: %w", p.Address, err)
		}
		s.peers[p.Address] = peer
	}
	return s.watchBFD()
}

// watchBFD works around GoBGP 4.8's BFD (fixed in 4.9, which is not
// served here): its BFD session keeps the router's discriminator for good,
// while a router may start a new BFD session whenever the BGP session
// restarts (BIRD does). The router then refuses the switch's BFD packets
// ("unknown session id"), the switch's side expires, resets the BGP
// session, the router starts yet another BFD session, and the BGP session
// flaps every few seconds for ever (seen with BIRD 2.0.12 after the switch
// froze for a second). So whenever the BGP session with a BFD peer goes
// down, its BFD session is made anew (renewBFD): it then takes the
// router's new one.
func (s *Speaker) watchBFD() error {
	if !slices.ContainsFunc(s.cfg.Peers, func(p Peer) bool { return p.BFD }) {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.unwatch = cancel
	down := make(chan netip.Addr, 16)
	err := s.srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(e *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			if e.Type != apiutil.PEER_EVENT_STATE || e.Peer.State.SessionState != bgp.BGP_FSM_IDLE {
				return
			}
			select {
			case down <- e.Peer.State.NeighborAddress:
			default: // renewals pending already
			}
		},
	}, server.WatchPeer())
	if err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case addr := <-down:
				if err := s.renewBFD(ctx, addr); err != nil && ctx.Err() == nil {
					s.log.Warn().Err(err).Stringer("peer", addr).Msg("BFD session not renewed")
				}
			}
		}
	}()
	return nil
}

// renewBFD makes the BFD session with peer addr anew, if it has one: GoBGP
// recreates it when its configuration changes, so the transmit interval
// is moved by one microsecond, up or down, which nobody can tell.
func (s *Speaker) renewBFD(ctx context.Context, addr netip.Addr) error {
	peer, ok := s.peers[addr]
	if !ok || peer.Bfd == nil {
		return nil
	}
	peer.Bfd.DesiredMinimumTxInterval ^= 1
	if _, err := s.srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: peer}); err != nil {
		return err
	}
	s.bfdRenews.Add(1)
	s.log.Debug().Stringer("peer", addr).Msg("BFD session renewed after the BGP session went down")
	return nil
}

// path is the announcement of the prefix, or its withdrawal.
func (s *Speaker) path() (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(s.cfg.Prefix)
	if err != nil {
		return nil, err
	}
	nh, err := bgp.NewPathAttributeNextHop(s.cfg.LocalAddress)
	if err != nil {
		return nil, err
	}
	return &apiutil.Path{
		Family: bgp.RF_IPv4_UC,
		Nlri:   nlri,
		Attrs:  []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP), nh},
	}, nil
}

// Announce announces the prefix to every peer, now and whenever a session
// comes up, until Withdraw. It does nothing when the prefix is announced,
// and returns ErrLeft after Leave.
func (s *Speaker) Announce() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.left.Load():
		return ErrLeft
	case s.announced.Load():
		return nil
	}
	p, err := s.path()
	if err == nil {
		_, err = s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}})
	}
	if err != nil {
		return fmt.Errorf("announce %v: %w", s.cfg.Prefix, err)
	}
	s.announced.Store(true)
	s.changes.Add(1)
	s.log.Info().Stringer("prefix", s.cfg.Prefix).Stringer("next_hop", s.cfg.LocalAddress).Msg("VIP announced")
	return nil
}

// Withdraw withdraws the prefix and waits until the withdrawal has been
// sent to every peer whose session carried it (see the package's
// guarantee), at most until ctx ends or 2 s passed: a session that sends
// nothing for that long is left to its hold timer, and the error names it.
// It does nothing when the prefix is not announced.
func (s *Speaker) Withdraw(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.withdraw(ctx)
}

func (s *Speaker) withdraw(ctx context.Context) error {
	if !s.announced.Load() {
		return nil
	}
	carrying, err := s.carrying(ctx)
	if err != nil {
		return fmt.Errorf("withdraw %v: %w", s.cfg.Prefix, err)
	}
	p, err := s.path()
	if err == nil {
		err = s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{p}})
	}
	if err != nil {
		return fmt.Errorf("withdraw %v: %w", s.cfg.Prefix, err)
	}
	s.announced.Store(false)
	s.changes.Add(1)
	s.log.Info().Stringer("prefix", s.cfg.Prefix).Msg("VIP withdrawn")
	ctx, cancel := context.WithTimeout(ctx, sentTimeout)
	defer cancel()
	return s.waitSent(ctx, carrying)
}

// carrying returns the established peers the prefix is advertised to,
// with the number of UPDATE messages each has been sent so far.
func (s *Speaker) carrying(ctx context.Context) (map[string]uint64, error) {
	out := make(map[string]uint64)
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.State == nil || p.State.SessionState != api.PeerState_SESSION_STATE_ESTABLISHED {
			return
		}
		for _, af := range p.AfiSafis {
			if af.State != nil && af.State.Advertised > 0 {
				out[p.Conf.NeighborAddress] = updatesSent(p)
				return
			}
		}
	})
	return out, err
}

// waitSent waits until every peer of sent (UPDATE counts before the
// withdrawal) has been sent one more UPDATE or is no longer established.
func (s *Speaker) waitSent(ctx context.Context, sent map[string]uint64) error {
	tick := time.NewTicker(sentPoll)
	defer tick.Stop()
	for len(sent) > 0 {
		err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			before, ok := sent[p.Conf.NeighborAddress]
			if ok && (p.State == nil || p.State.SessionState != api.PeerState_SESSION_STATE_ESTABLISHED || updatesSent(p) > before) {
				delete(sent, p.Conf.NeighborAddress)
			}
		})
		if err != nil {
			return fmt.Errorf("withdraw %v: %w", s.cfg.Prefix, err)
		}
		if len(sent) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			var left []string
			for a := range sent {
				left = append(left, a)
			}
			return fmt.Errorf("withdraw %v: not sent to %s: %w", s.cfg.Prefix, strings.Join(left, ", "), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// updatesSent returns the UPDATE messages sent to peer p.
func updatesSent(p *api.Peer) uint64 {
	if p.State == nil || p.State.Messages == nil || p.State.Messages.Sent == nil {
		return 0
	}
	return p.State.Messages.Sent.Update
}

// Follow announces the prefix while serving reports true and withdraws it
// while it reports false, asking every Config.Interval, until ctx ends.
// After Leave it keeps the prefix withdrawn. Errors are logged.
func (s *Speaker) Follow(ctx context.Context, serving func() bool) {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		var err error
		if serving() {
			err = s.Announce()
		} else {
			err = s.Withdraw(ctx)
		}
		if err != nil && !errors.Is(err, ErrLeft) && ctx.Err() == nil {
			s.log.Error().Err(err).Msg("announcement")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Leave withdraws the prefix for good, as Withdraw does: the switch leaves
// the cluster (a drain, an upgrade). The sessions stay up until Stop.
func (s *Speaker) Leave(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.left.Swap(true) {
		s.log.Info().Msg("leaving: the VIP is withdrawn for good")
	}
	return s.withdraw(ctx)
}

// Stop leaves (withdraws the prefix and waits for the withdrawal to be
// sent), then closes every session with a NOTIFICATION (Cease) and stops
// the server. Later calls do nothing.
func (s *Speaker) Stop() {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), sentTimeout)
		defer cancel()
		if err := s.Leave(ctx); err != nil {
			s.log.Warn().Err(err).Msg("stop")
		}
		s.unwatch()
		s.srv.Stop()
	})
}

// Status is the speaker's state, for the admin API and the metrics.
type Status struct {
	Prefix    netip.Prefix `json:"prefix"`
	NextHop   netip.Addr   `json:"next_hop"`
	Announced bool         `json:"announced"`
	Left      bool         `json:"left,omitempty"` // withdrawn for good (draining, upgrading)
	// Changes counts announcements and withdrawals since Start.
	Changes uint64       `json:"changes"`
	Peers   []PeerStatus `json:"peers"`
}

// PeerStatus is one peer's session.
type PeerStatus struct {
	Address netip.AddrPort `json:"address"`
	ASN     uint32         `json:"asn"`
	// State is the BGP session's state: idle, connect, active, opensent,
	// openconfirm or established; Up is true in the last.
	State string `json:"state"`
	Up    bool   `json:"up"`
	// BFD is the BFD session's state (up, down, init, admin_down), empty
	// without BFD.
	BFD string `json:"bfd,omitempty"`
}

// Status returns the speaker's state, its peers in configuration order.
func (s *Speaker) Status(ctx context.Context) (Status, error) {
	st := Status{Prefix: s.cfg.Prefix, NextHop: s.cfg.LocalAddress, Announced: s.announced.Load(), Left: s.left.Load(), Changes: s.changes.Load()}
	got := make(map[string]*api.Peer)
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) { got[p.Conf.NeighborAddress] = p })
	for _, p := range s.cfg.Peers {
		port := p.Port
		if port == 0 {
			port = bgp.BGP_PORT
		}
		ps := PeerStatus{Address: netip.AddrPortFrom(p.Address, port), ASN: p.ASN, State: "unknown"}
		if ap := got[p.Address.String()]; ap != nil && ap.State != nil {
			ps.State = strings.ToLower(strings.TrimPrefix(ap.State.SessionState.String(), "SESSION_STATE_"))
			ps.Up = ap.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED
			if p.BFD && ap.State.BfdState != nil {
				ps.BFD = strings.ToLower(strings.TrimPrefix(ap.State.BfdState.SessionState.String(), "BFD_SESSION_STATE_"))
			}
		}
		st.Peers = append(st.Peers, ps)
	}
	return st, err
}
