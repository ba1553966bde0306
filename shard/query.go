package shard

import (
	"context"
	"net/netip"

	"webswitch/tcpfsm"
)

// FlowFilter selects flows for Switch.Flows; zero fields match any flow.
type FlowFilter struct {
	Client  netip.Addr // the client's address
	Port    uint16     // the client's port
	Backend string     // the back-end's name (spliced or being handed off)
	State   string     // one of FlowInfo's states
}

// FlowInfo describes one flow.
type FlowInfo struct {
	Shard   int    `json:"shard"`
	Client  string `json:"client"` // ip:port
	VIPPort uint16 `json:"vip_port"`
	// State is "request" (waiting for its request head), "handing_off",
	// "responding" (the switch answers it itself) or "spliced".
	State   string  `json:"state"`
	Backend string  `json:"backend,omitempty"`
	Idle    float64 `json:"idle_seconds"` // since the last client frame (spliced) or since the handshake
}

// flowQuery asks a shard for its flows matching filter: up to max of
// them, and how many match in all.
type flowQuery struct {
	filter FlowFilter
	max    int
	reply  chan flowAnswer
}

type flowAnswer struct {
	flows []FlowInfo
	total int
}

// Flows returns, shard after shard, the flows that match f, skipping the
// first offset and returning at most limit, and how many match in all. Each
// shard answers between two rounds of its loop.
func (sw *Switch) Flows(ctx context.Context, f FlowFilter, offset, limit int) ([]FlowInfo, int, error) {
	var all []FlowInfo
	total := 0
	for _, s := range sw.shards {
		q := &flowQuery{filter: f, max: offset + limit - len(all), reply: make(chan flowAnswer, 1)}
		select {
		case s.queries <- q:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		select {
		case a := <-q.reply:
			all = append(all, a.flows...)
			total += a.total
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	if offset >= len(all) {
		return []FlowInfo{}, total, nil
	}
	return all[offset:min(len(all), offset+limit)], total, nil
}

// answer serves a flow query from the shard's own goroutine.
func (s *Shard) answer(q *flowQuery) {
	var a flowAnswer
	for i := range s.tab.flows {
		fl := &s.tab.flows[i]
		if fl.state == flowInvalid {
			continue
		}
		info := s.flowInfo(fl)
		if !q.filter.match(&info) {
			continue
		}
		a.total++
		if len(a.flows) < q.max {
			a.flows = append(a.flows, info)
		}
	}
	q.reply <- a
}

func (s *Shard) flowInfo(fl *flow) FlowInfo {
	client, vip := s.addrs(fl.key)
	info := FlowInfo{Shard: s.id, Client: client.String(), VIPPort: vip.Port()}
	since := fl.last
	backend := -1
	if fl.state == flowSpliced {
		info.State, backend = "spliced", int(fl.backend)
	} else {
		c := fl.conn
		since = c.created
		switch c.tcp.State() {
		case tcpfsm.RequestWait:
			info.State = "request"
		case tcpfsm.HandingOff:
			info.State, backend = "handing_off", c.backend
		default:
			info.State = "responding"
		}
	}
	if backend >= 0 {
		info.Backend = s.cfg.Backends[backend].Name
	}
	info.Idle = s.now.Sub(since).Seconds()
	return info
}

func (f *FlowFilter) match(info *FlowInfo) bool {
	if f.Client.IsValid() || f.Port != 0 {
		ap, err := netip.ParseAddrPort(info.Client)
		if err != nil || f.Client.IsValid() && ap.Addr() != f.Client || f.Port != 0 && ap.Port() != f.Port {
			return false
		}
	}
	return (f.Backend == "" || f.Backend == info.Backend) && (f.State == "" || f.State == info.State)
}
