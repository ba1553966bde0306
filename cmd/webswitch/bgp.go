package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"webswitch/conf"
	"webswitch/internal/announce"
	"webswitch/neigh"
)

// withdrawSettle is how long a switch that leaves its cluster (a drain, an
// upgrade) goes on serving as before once its withdrawal of the VIP has
// been sent: the routers' time to take its next hop out of their ECMP
// route (milliseconds for BIRD on Linux, more for a hardware router's
// FIB), so that no new connection still arriving here is refused, and no
// frame is lost to a stopped data path.
const withdrawSettle = time.Second

// leaveTimeout bounds the wait for the withdrawal to be sent.
const leaveTimeout = 3 * time.Second

// speakerConfig builds the BGP speaker's configuration from the file's
// [bgp] table, nil without one: the VIP/32 announced with the local
// address as next hop, by default the first IPv4 address of the switch's
// interface.
func speakerConfig(path string, c *conf.Switch) (*announce.Config, error) {
	b := c.BGP
	if b == nil {
		return nil, nil
	}
	local := b.LocalAddress
	if !local.IsValid() {
		ifi, err := net.InterfaceByName(c.Switch.Interface)
		if err == nil {
			local, err = neigh.FirstIPv4(ifi)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: bgp.local_address: %w", path, err)
		}
		if !local.IsValid() {
			return nil, fmt.Errorf("%s: bgp.local_address: not set, and interface %s has no IPv4 address", path, c.Switch.Interface)
		}
	}
	cfg := &announce.Config{
		ASN: b.ASN, RouterID: b.RouterID, LocalAddress: local,
		Prefix:     netip.PrefixFrom(c.Switch.VIP, 32),
		ListenPort: b.ListenPort,
		HoldTime:   b.HoldTime.Duration,
	}
	for _, p := range b.Peers {
		cfg.Peers = append(cfg.Peers, announce.Peer{Address: p.Address, Port: p.Port, ASN: p.ASN, BFD: p.BFD})
	}
	return cfg, nil
}

// cluster is the switch's part in a cluster of switches behind a router:
// its BGP speaker, with [bgp]. Without one (sp nil) every method does
// nothing.
type cluster struct {
	sp     *announce.Speaker
	settle time.Duration // withdrawSettle; shorter in tests
	log    zerolog.Logger
}

// startCluster starts the speaker of cfg (nil: no [bgp]).
func startCluster(cfg *announce.Config, log zerolog.Logger) (*cluster, error) {
	cl := &cluster{settle: withdrawSettle, log: log}
	if cfg == nil {
		return cl, nil
	}
	sp, err := announce.Start(*cfg, log)
	if err != nil {
		return nil, err
	}
	cl.sp = sp
	log.Info().Stringer("vip", cfg.Prefix).Stringer("next_hop", cfg.LocalAddress).Int("peers", len(cfg.Peers)).
		Msg("BGP speaker started: the VIP is announced while the switch serves")
	return cl, nil
}

// routed reports whether the switch announces the VIP by BGP.
func (cl *cluster) routed() bool { return cl.sp != nil }

// follow announces the VIP while serving reports true, until ctx ends.
func (cl *cluster) follow(ctx context.Context, serving func() bool) {
	if cl.sp != nil {
		cl.sp.Follow(ctx, serving)
	}
}

// leave withdraws the VIP for good and, once the withdrawal is sent, lets
// the routers move the flows away for cl.settle while the switch still
// serves: what a drain and an upgrade do first. The flows the routers move
// are recovered by the other switches.
func (cl *cluster) leave() {
	if cl.sp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := cl.sp.Leave(ctx); err != nil {
		cl.log.Warn().Err(err).Msg("BGP: withdrawal not sent to every router; their hold timers will drop the route")
	}
	cl.log.Info().Dur("settle", cl.settle).Msg("BGP: VIP withdrawn; waiting for the routers to move the flows")
	time.Sleep(cl.settle)
}

// stop withdraws the VIP and closes the sessions.
func (cl *cluster) stop() {
	if cl.sp != nil {
		cl.sp.Stop()
	}
}

// status is what the admin API shows of BGP: nil without [bgp].
func (cl *cluster) status() bgpStatus {
	if cl.sp == nil {
		return nil
	}
	return cl.sp
}

// bgpStatus is what the admin API reads of the BGP speaker (an
// *announce.Speaker; a fake in tests).
type bgpStatus interface {
	Status(ctx context.Context) (announce.Status, error)
}
