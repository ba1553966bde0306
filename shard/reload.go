package shard

import (
	"slices"

	"webswitch/handoff/control"
	"webswitch/l7"
)

// Reload makes every shard run next (built by FromConf from a newly read
// file) from its next round on: new rules, pools, back-ends and timeouts
// apply to new connections; flows already spliced keep going to their
// back-end's MAC, even one that next no longer lists. next must keep the
// keys that need a restart (conf.Switch.RestartKeys checks them). Call it
// from one goroutine at a time.
//
// Back-ends keep their index for the life of the process (spliced flows
// refer to them by index): one next no longer lists, or lists with another
// address, is kept as a removed entry (no control connection, its MAC
// still refreshed for its flows), and new ones are appended.
func (sw *Switch) Reload(next *Config) error {
	sw.reloadMu.Lock()
	defer sw.reloadMu.Unlock()
	cur := sw.cfg
	merged := *next
	merged.Backends, merged.Pools = mergeBackends(cur.Backends, next.Backends, next.Pools)
	sw.nb.Grow(len(merged.Backends))
	sw.loads.grow(len(merged.Backends))
	sw.cfg = &merged
	sw.arp.Load().SetConfig(neighConfig(&merged))
	for _, s := range sw.shards {
		s.pending.Store(&merged)
	}
	return nil
}

// mergeBackends returns the back-ends of a reloaded configuration with the
// running ones' indices kept, and next's pools with their back-ends
// renumbered to match.
func mergeBackends(cur, next []Backend, pools []l7.Pool) ([]Backend, []l7.Pool) {
	merged := slices.Clone(cur)
	index := make(map[string]int) // next's index -> merged index, by name
	for i := range merged {
		merged[i].Removed = true
	}
	for _, b := range next {
		i := slices.IndexFunc(merged, func(m Backend) bool { return m.Name == b.Name && m.IP == b.IP && m.Removed })
		if i < 0 {
			i = len(merged)
			merged = append(merged, b)
		}
		merged[i] = b // the agent's address may have changed
		index[b.Name] = i
	}
	out := make([]l7.Pool, len(pools))
	for p, pool := range pools {
		out[p] = pool
		out[p].Backends = make([]int, len(pool.Backends))
		for j, b := range pool.Backends {
			out[p].Backends[j] = index[next[b].Name]
		}
	}
	return merged, out
}

// apply switches the shard to cfg, given by Reload: the control
// connections follow the back-ends (see control.Set.Reconfigure); the
// pools' policies start again (round-robin cursors, LARD tables); and the
// new timeouts apply to every flow from now on, those in the table
// included. A timeout is a limit of the switch's own table, not a promise
// to a client: a longer idle_timeout must save the keep-alive connections
// it was raised for, a shorter one must free memory now. (One pass over
// the table, once per reload.)
func (s *Shard) apply(cfg *Config) {
	s.cfg = cfg
	s.published.Store(cfg)
	s.C.growBackends(len(cfg.Backends))
	s.bc = s.C.Backends()
	s.ctl.Reconfigure(&cfg.Control, targets(cfg), s.now)
	s.pickers = newPickers(cfg)
	for i := range s.tab.flows {
		if s.tab.flows[i].state != flowInvalid {
			s.schedule(int32(i))
		}
	}
	s.log.Info().Int("shard", s.id).Int("backends", len(cfg.Backends)).Int("pools", len(cfg.Pools)).Msg("configuration reloaded")
}

// targets returns the back-ends as the control connections see them.
func targets(cfg *Config) []control.Target {
	t := make([]control.Target, len(cfg.Backends))
	for i := range cfg.Backends {
		t[i] = cfg.Backends[i].Target
	}
	return t
}
