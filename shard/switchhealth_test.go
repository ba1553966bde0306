package shard

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"webswitch/handoff"
	"webswitch/internal/mono"
	"webswitch/neigh"
)

// deadConn is a neighbour socket whose reads fail, as one on an interface
// that vanished.
type deadConn struct{}

var errDeadSocket = errors.New("recvfrom: network is down")

func (deadConn) ReadFrom([]byte) (int, net.Addr, error)    { return 0, nil, errDeadSocket }
func (deadConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }
func (deadConn) SetReadDeadline(time.Time) error           { return nil }
func (deadConn) Close() error                              { return nil }

// TestSwitchHealth: Health is empty while the shards' loops run, the
// resolver runs and the interface is up, and names each thing that keeps
// the switch from doing its job.
func TestSwitchHealth(t *testing.T) {
	h := newHarness(t)
	cfg := h.s.cfg
	cfg.Interface = "eth-test"
	var linkErr error
	sw := &Switch{cfg: cfg, log: zerolog.Nop(), shards: []*Shard{h.s}, nb: h.s.nb,
		clock: func() mono.Time { return h.now }, linkUp: func(string) error { return linkErr }}
	sw.arp.Store(neigh.New(deadConn{}, neigh.Link{}, neighConfig(cfg), h.s.nb, zerolog.Nop()))

	h.s.round()
	if p := sw.Health(); len(p) != 0 {
		t.Fatalf("healthy switch: %q", p)
	}
	h.now = h.now.Add(2 * time.Second) // the loop does not run
	if p := sw.Health(); len(p) != 1 || !strings.HasPrefix(p[0], "shard 0: no loop round for 2s") {
		t.Errorf("stuck shard: %q", p)
	}
	h.s.round()

	if err := sw.arp.Load().Run(context.Background()); !errors.Is(err, errDeadSocket) {
		t.Fatalf("resolver Run = %v, want the read error", err)
	}
	if p := sw.Health(); len(p) != 1 || !strings.Contains(p[0], "neighbour resolver stopped: ") || !strings.Contains(p[0], errDeadSocket.Error()) {
		t.Errorf("dead resolver: %q", p)
	}

	linkErr = errors.New("interface eth-test is down")
	if p := sw.Health(); len(p) != 2 || p[1] != "interface eth-test is down" {
		t.Errorf("interface down: %q", p)
	}
}

// TestSwitchServing: the switch serves (a cluster announces the VIP for
// it) while Health is empty, it does not drain and a pool has a back-end
// usable on every shard; a pool without one is named by
// PoolsWithoutBackend, and /readyz's pools are those.
func TestSwitchServing(t *testing.T) {
	h := newHarness(t)
	cfg := h.s.cfg
	var linkErr error
	sw := &Switch{cfg: cfg, log: zerolog.Nop(), shards: []*Shard{h.s}, nb: h.s.nb,
		clock: func() mono.Time { return h.now }, linkUp: func(string) error { return linkErr }}
	sw.arp.Store(neigh.New(deadConn{}, neigh.Link{}, neighConfig(cfg), h.s.nb, zerolog.Nop()))
	report := func(b int, hl handoff.Health) {
		t.Helper()
		if err := h.agents[b].Sess.Send(handoff.MsgLoad, 0, handoff.AppendLoadBody(nil, 0, hl)); err != nil {
			t.Fatal(err)
		}
		h.pump()
		h.s.round() // which publishes the back-ends usable
	}
	missing := func() []string {
		return PoolsWithoutBackend(cfg, []Snapshot{h.s.snapshot()})
	}

	h.s.round()
	if !sw.Serving() || len(missing()) != 0 {
		t.Fatalf("healthy switch: serving %v, pools without a back-end %q", sw.Serving(), missing())
	}
	report(1, handoff.HealthDown) // pool "web" has only be2
	if !sw.Serving() || !slices.Equal(missing(), []string{"web"}) {
		t.Errorf("be2 down: serving %v, pools without a back-end %q; want serving, [web]", sw.Serving(), missing())
	}
	report(0, handoff.HealthDraining)
	if sw.Serving() || !slices.Equal(missing(), []string{"static", "web", "both"}) {
		t.Errorf("both back-ends out: serving %v, pools without a back-end %q; want not serving, all pools", sw.Serving(), missing())
	}
	report(0, handoff.HealthUp)
	if !sw.Serving() {
		t.Error("be1 back: not serving")
	}

	linkErr = errors.New("interface eth-test is down")
	if sw.Serving() {
		t.Error("interface down: serving")
	}
	linkErr = nil
	h.now = h.now.Add(2 * time.Second) // the loop does not run
	if sw.Serving() {
		t.Error("no loop round for 2s: serving")
	}
	h.s.round()
	if !sw.Serving() {
		t.Error("loop back: not serving")
	}
	sw.Drain()
	if sw.Serving() {
		t.Error("draining: serving")
	}
}
