// Package shard is the switch's data path: one loop per CPU (Shard.round),
// each owning a Link (a ring socket of a fanout group and its TX path), a
// flow table, a timer wheel, counters and a control.Set of connections to
// every agent, and splicing the flows handed off. It ties ring, tcpfsm, l7,
// neigh and handoff/control together; see DESIGN.md section 3 for the
// packet walk. The Switch around the shards runs the neighbour resolver
// and answers reloads, flow queries, captures and health.
package shard

import (
	"fmt"
	"net"
	"runtime"
	"slices"
	"time"

	"webswitch/conf"
	"webswitch/handoff/control"
	"webswitch/l7"
	"webswitch/tcpfsm"
)

// Backend is one back-end as the data path sees it: its address, and its
// agent as the control connections see it (Name, Agent, Removed). Removed
// marks a back-end a reload took out: no pool has it and no control
// connection goes to it, but flows spliced to it still reach its MAC (see
// Switch.Reload).
type Backend struct {
	control.Target
	IP [4]byte
}

// Config is everything the data path needs, built once from the TOML file.
type Config struct {
	Interface string
	VIP       [4]byte
	Ports     []uint16 // HTTP
	TLSPorts  []uint16
	Shards    int
	Backends  []Backend
	Pools     []l7.Pool
	Router    *l7.Router
	FSM       tcpfsm.Config

	MaxFlows        int // per shard
	MaxRequestHead  int
	RequestTimeout  time.Duration
	HandoffTimeout  time.Duration
	IdleTimeout     time.Duration
	DrainTimeout    time.Duration // of a graceful stop (the daemon's)
	RecoveryRate    int           // connections asked about per second, all shards
	RecoveryTimeout time.Duration // for the agents' answers to a LOOKUP
	Linger          time.Duration

	RingVersion      int
	RingSlots        int
	RingBlockSize    int
	RingBlocks       int
	RingBlockTimeout time.Duration
	ARPRefresh       time.Duration
	// RoutedVIP is set with [bgp]: routers send the VIP's frames to the
	// switch's own address, and the switch answers no ARP for the VIP.
	// Unset, the switch owns the VIP at layer 2: it answers ARP for it
	// and announces it by gratuitous ARP.
	RoutedVIP bool

	Control control.Config // the control connections to the agents
}

// The switch's TCP parameters that are not in the configuration file.
const (
	advertisedWScale = 7 // the back-ends inherit it; 7 lets their receive window grow to 8 MiB
	rtoInitial       = 300 * time.Millisecond
	rtoMax           = 10 * time.Second
	maxRetries       = 6
)

// FromConf builds the data path's configuration from a loaded file.
func FromConf(c *conf.Switch, secret []byte) (*Config, error) {
	s := &c.Switch
	ifi, err := net.InterfaceByName(s.Interface)
	if err != nil {
		return nil, fmt.Errorf("switch.interface %q: %w", s.Interface, err)
	}
	shards := s.Shards
	if shards == 0 {
		shards = runtime.NumCPU()
	}
	cfg := &Config{
		Interface:        s.Interface,
		VIP:              s.VIP.As4(),
		Ports:            s.Ports,
		TLSPorts:         s.TLSPorts,
		Shards:           shards,
		MaxFlows:         max(1, s.MaxFlows/shards),
		MaxRequestHead:   s.MaxRequestHead,
		RequestTimeout:   s.RequestTimeout.Duration,
		HandoffTimeout:   s.HandoffTimeout.Duration,
		IdleTimeout:      s.IdleTimeout.Duration,
		DrainTimeout:     s.DrainTimeout.Duration,
		RecoveryRate:     s.RecoveryRate,
		RecoveryTimeout:  s.RecoveryTimeout.Duration,
		Linger:           s.Linger.Duration,
		RingVersion:      s.RingVersion,
		RingSlots:        s.RingSlots,
		RingBlockSize:    s.RingBlockSize,
		RingBlocks:       s.RingBlocks,
		RingBlockTimeout: s.RingBlockTimeout.Duration,
		ARPRefresh:       s.ARPRefresh.Duration,
		RoutedVIP:        c.BGP != nil,
		Control: control.Config{
			Secret:         secret,
			ConnectTimeout: c.Control.ConnectTimeout.Duration,
			ReconnectMin:   c.Control.ReconnectMin.Duration,
			ReconnectMax:   c.Control.ReconnectMax.Duration,
			HealthInterval: c.Health.Interval.Duration,
			HealthTimeout:  c.Health.Timeout.Duration,
			HealthRise:     c.Health.Rise,
			HealthFall:     c.Health.Fall,
			AnswerTimeout:  s.HandoffTimeout.Duration,
		},
		FSM: tcpfsm.Config{
			MSS:        uint16(min(ifi.MTU-40, 0xFFFF)),
			WScale:     advertisedWScale,
			Window:     s.RequestWindow,
			RTOInitial: rtoInitial,
			RTOMax:     rtoMax,
			MaxRetries: maxRetries,
			Linger:     s.Linger.Duration,
		},
	}
	for _, b := range c.Backends {
		cfg.Backends = append(cfg.Backends, Backend{Target: control.Target{Name: b.Name, Agent: b.Agent}, IP: b.Address.As4()})
	}
	cfg.Pools = c.L7Pools()
	if cfg.Router, err = l7.NewRouter(c.L7Rules()); err != nil {
		return nil, err
	}
	return cfg, nil
}

// hasPort reports whether the switch serves port, HTTP or TLS.
func (cfg *Config) hasPort(p uint16) bool {
	return slices.Contains(cfg.Ports, p) || cfg.isTLSPort(p)
}

func (cfg *Config) isTLSPort(p uint16) bool { return slices.Contains(cfg.TLSPorts, p) }
