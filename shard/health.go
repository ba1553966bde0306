package shard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"webswitch/internal/mono"
	"webswitch/neigh"
)

// Health limits.
const (
	// staleRound is how old a shard's last round may be before the shard
	// counts as stuck: a round ends at least every pollTick.
	staleRound = time.Second
	// resolverRetry is the wait before the neighbour resolver's socket is
	// opened again after it failed.
	resolverRetry = time.Second
)

// Health returns what keeps the switch from doing its job, nil when
// nothing does: a shard whose loop has not finished a round within
// staleRound (stuck or dead), a neighbour resolver that stopped (nobody
// answers ARP for the VIP, back-ends' new MACs go unseen), an interface
// that is down or gone. Any goroutine may call it.
func (sw *Switch) Health() []string {
	var problems []string
	now := sw.clock()
	for _, s := range sw.shards {
		if age := now.Sub(mono.Time(s.C.Round.Load())); age > staleRound {
			problems = append(problems, fmt.Sprintf("shard %d: no loop round for %v", s.id, age.Round(time.Millisecond)))
		}
	}
	if err := sw.arp.Load().Err(); err != nil {
		problems = append(problems, fmt.Sprintf("neighbour resolver stopped: %v", err))
	}
	if err := sw.linkUp(sw.Config().Interface); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}

// Serving reports whether the switch can take new connections: it is not
// draining, Health finds nothing wrong (every shard's loop runs, the
// neighbour resolver runs, the interface is up with a carrier), and at
// least one pool has a back-end usable on every shard. It is what a switch
// of a cluster announces the VIP for. Any goroutine may call it.
func (sw *Switch) Serving() bool {
	if sw.Draining() || len(sw.Health()) > 0 {
		return false
	}
	snaps := make([]Snapshot, len(sw.shards))
	for i, s := range sw.shards {
		snaps[i] = s.snapshot()
	}
	cfg := sw.Config()
	return len(PoolsWithoutBackend(cfg, snaps)) < len(cfg.Pools)
}

// PoolsWithoutBackend returns the names of cfg's pools that have no
// back-end usable on every shard of snaps: the switch would answer 503 to
// some of their requests.
func PoolsWithoutBackend(cfg *Config, snaps []Snapshot) []string {
	var missing []string
	for _, p := range cfg.Pools {
		if !slices.ContainsFunc(p.Backends, func(b int) bool { return usableEverywhere(b, snaps) }) {
			missing = append(missing, p.Name)
		}
	}
	return missing
}

// usableEverywhere reports whether every shard of snaps (at least one) may
// hand new connections to back-end b.
func usableEverywhere(b int, snaps []Snapshot) bool {
	for _, s := range snaps {
		if b >= len(s.Backends) || !s.Backends[b].Usable {
			return false
		}
	}
	return len(snaps) > 0
}

// linkUp reports whether the interface ifname exists, is up and has a
// carrier (the kernel's RUNNING flag).
func linkUp(ifname string) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("interface %s: %w", ifname, err)
	}
	if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagRunning == 0 {
		return fmt.Errorf("interface %s is down (flags %v)", ifname, ifi.Flags)
	}
	return nil
}

// resolve runs the neighbour resolver until ctx ends. When it fails (its
// socket died), the failure is logged and shows in Health, and a new
// socket is opened every resolverRetry until one works: the spliced flows
// go on meanwhile with the MAC addresses already known.
func (sw *Switch) resolve(ctx context.Context) {
	for {
		err := sw.arp.Load().Run(ctx)
		if ctx.Err() != nil {
			return
		}
		sw.log.Error().Err(err).Msg("neighbour resolver stopped: nobody answers ARP for the VIP; reopening")
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(resolverRetry):
			}
			if sw.reopenResolver() {
				sw.log.Info().Msg("neighbour resolver reopened")
				break
			}
		}
	}
}

// reopenResolver opens a new resolver socket and puts the resolver in
// place; under reloadMu, so that a reload cannot slip between the
// configuration it reads and the Store.
func (sw *Switch) reopenResolver() bool {
	sw.reloadMu.Lock()
	defer sw.reloadMu.Unlock()
	r, err := neigh.Listen(sw.cfg.Interface, neighConfig(sw.cfg), sw.nb, sw.log)
	if err != nil {
		sw.log.Error().Err(err).Msg("neighbour resolver: reopening failed")
		return false
	}
	sw.arp.Store(r)
	return true
}

// neighConfig is what the neighbour resolver needs of cfg. Removed
// back-ends stay: their flows still need their MAC addresses.
func neighConfig(cfg *Config) neigh.Config {
	nc := neigh.Config{VIP: netip.AddrFrom4(cfg.VIP), Refresh: cfg.ARPRefresh, AnswerVIP: !cfg.RoutedVIP}
	for _, b := range cfg.Backends {
		nc.Backends = append(nc.Backends, netip.AddrFrom4(b.IP))
	}
	return nc
}
