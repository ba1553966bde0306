package shard

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"webswitch/handoff/control"
	"webswitch/internal/mono"
	"webswitch/neigh"
	"webswitch/ring"
	"webswitch/tcpfsm"
)

// Switch is the whole data path: the shards, the neighbour resolver and
// the shared read-mostly state.
type Switch struct {
	cfg       *Config    // the latest configuration, the shards' after their next round
	reloadMu  sync.Mutex // serialises Reload
	statsMu   sync.Mutex // serialises Snapshots (ring statistics are read-and-reset)
	captureMu sync.Mutex // one Capture at a time
	log       zerolog.Logger
	shards    []*Shard
	rings     []*ring.Ring
	nb        *neigh.Table
	loads     *loadTable
	arp       atomic.Pointer[neigh.Resolver] // replaced when it fails (see resolve)
	clock     func() mono.Time
	linkUp    func(ifname string) error // nil when the interface can carry frames
	draining  atomic.Bool
}

// New opens one ring per shard in one fanout group and the neighbour
// resolver's socket.
// It refuses to start when the host's kernel would interfere (IP forwarding
// on: the kernel would forward frames for the VIP and send redirects).
func New(cfg *Config, log zerolog.Logger) (*Switch, error) {
	if err := checkForwarding(); err != nil {
		return nil, err
	}
	cookies := tcpfsm.NewCookies(cookieKey(cfg.Control.Secret))
	clock := mono.Clock()
	sw := &Switch{cfg: cfg, log: log, nb: neigh.NewTable(len(cfg.Backends)), loads: newLoadTable(len(cfg.Backends)), clock: clock, linkUp: linkUp}
	group := uint16(os.Getpid()&0x7fff) + 1
	for i := range cfg.Shards {
		blocks := cfg.RingBlocks
		if cfg.RingVersion == 2 {
			blocks = cfg.RingSlots // a version 2 ring has one frame per block
		}
		r, err := ring.Open(ring.Config{
			Version:      cfg.RingVersion,
			Interface:    cfg.Interface,
			BlockSize:    cfg.RingBlockSize,
			NumBlocks:    blocks,
			BlockTimeout: cfg.RingBlockTimeout,
			FanoutGroup:  group,
			Filter:       ring.FilterTCPToAddr(cfg.VIP),
			VnetHdr:      true,
			QdiscBypass:  true,
		})
		if err != nil {
			sw.closeRings()
			return nil, fmt.Errorf("shard %d: %w", i, err)
		}
		sw.rings = append(sw.rings, r)
		s := newShard(i, i%runtime.NumCPU(), cfg, [6]byte(r.HardwareAddr()), newRingLink(r, txBatch), true, cookies, sw.nb, sw.loads, control.DialTCP, clock, log)
		sw.shards = append(sw.shards, s)
	}
	arp, err := neigh.Listen(cfg.Interface, neighConfig(cfg), sw.nb, log)
	if err != nil {
		sw.closeRings()
		return nil, err
	}
	sw.arp.Store(arp)
	return sw, nil
}

func checkForwarding() error {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return nil // not Linux procfs: nothing to check
	}
	if strings.TrimSpace(string(b)) != "0" {
		return fmt.Errorf("net.ipv4.ip_forward is on: the kernel would forward frames for the VIP and send ICMP redirects; set it to 0 on the switch")
	}
	return nil
}

func (sw *Switch) closeRings() {
	for _, r := range sw.rings {
		r.Close()
	}
}

// Run runs the shards and the neighbour resolver until ctx ends. It logs every
// shard's counters every statsInterval, whenever dump receives, and at the
// end (with "final": true).
func (sw *Switch) Run(ctx context.Context, dump <-chan os.Signal) error {
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, s := range sw.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(&stop)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		sw.resolve(ctx)
	}()
	sw.log.Info().Int("shards", len(sw.shards)).Str("interface", sw.cfg.Interface).
		Str("vip", fmt.Sprintf("%d.%d.%d.%d", sw.cfg.VIP[0], sw.cfg.VIP[1], sw.cfg.VIP[2], sw.cfg.VIP[3])).
		Msg("switch running")
	tick := time.NewTicker(statsInterval)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-tick.C:
		case <-dump:
		case <-ctx.Done():
			stop.Store(true)
			wg.Wait()
			done = true
		}
		for _, snap := range sw.Snapshots() {
			ev := sw.log.Info()
			if done {
				ev = ev.Bool("final", true)
			}
			ev.Interface("counters", snap).Msg("shard counters")
		}
	}
	sw.closeRings()
	return nil
}

// Config returns the configuration the switch runs (the latest reloaded).
func (sw *Switch) Config() *Config {
	sw.reloadMu.Lock()
	defer sw.reloadMu.Unlock()
	return sw.cfg
}

// statsInterval is how often the shards' counters are logged.
const statsInterval = 10 * time.Second

// Snapshots returns every shard's counters, with its ring's kernel
// statistics. Any goroutine may call it.
func (sw *Switch) Snapshots() []Snapshot {
	sw.statsMu.Lock()
	defer sw.statsMu.Unlock()
	var out []Snapshot
	for i, s := range sw.shards {
		snap := s.snapshot()
		if st, err := sw.rings[i].Stats(); err == nil {
			snap.RingPackets, snap.RingDrops, snap.RingFreezes, snap.RingTruncated = st.Packets, st.Drops, st.Freezes, st.Truncated
		}
		out = append(out, snap)
	}
	return out
}

// Drain stops the switch taking new connections: from their next frame
// on, the shards answer SYNs with a RST (counted as draining drops). Flows
// already in the table go on: handshakes begun complete, requests are
// handed off, spliced flows are forwarded until they end. Any goroutine
// may call it.
func (sw *Switch) Drain() {
	sw.draining.Store(true)
	for _, s := range sw.shards {
		s.draining.Store(true)
	}
}

// Draining reports whether Drain was called.
func (sw *Switch) Draining() bool { return sw.draining.Load() }

// ActiveFlows returns the flows in every shard's table: what a drain waits
// for.
func (sw *Switch) ActiveFlows() int64 {
	var n int64
	for _, s := range sw.shards {
		n += s.C.ActiveFlows.Load()
	}
	return n
}

// FramesIn returns the frames the shards have taken from their rings.
func (sw *Switch) FramesIn() uint64 {
	var n uint64
	for _, s := range sw.shards {
		n += s.C.FramesIn.Load()
	}
	return n
}

// cookieKey derives the SYN cookies' key from the shared secret, so that a
// handshake begun before a restart completes after it, and switches that
// share the secret file accept each other's cookies (an ACK that a router
// sends to another switch than its SYN). The label keeps the key apart
// from the control connections' keys, derived from the same secret.
func cookieKey(secret []byte) [16]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("webswitch-syn-cookies-v1"))
	return [16]byte(m.Sum(nil))
}
