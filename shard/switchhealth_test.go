package shard

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

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
