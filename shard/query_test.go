package shard

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"webswitch/tcpfsm/header"
)

// TestFlows lists flows in each state through Switch.Flows, with filters
// and paging, the shard answering between its rounds.
func TestFlows(t *testing.T) {
	h := newHarness(t)
	h.client(45000).splice(1, "GET / HTTP/1.1\r\nHost: web.example\r\n\r\n") // spliced to be2
	waiting := h.client(45001)
	waiting.handshake() // request
	handing := h.client(45002)
	handing.handshake()
	handing.data(header.FlagPSH, "GET /static/x HTTP/1.1\r\nHost: a\r\n\r\n") // handing off to be1
	h.pump()
	h.tx.take()
	h.advance(2 * time.Second / 10)

	sw := &Switch{shards: []*Shard{h.s}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	query := func(f FlowFilter, offset, limit int) ([]FlowInfo, int) {
		t.Helper()
		done := make(chan struct{})
		go func() { // the shard's loop, for one round
			defer close(done)
			h.s.answer(<-h.s.queries)
		}()
		flows, total, err := sw.Flows(ctx, f, offset, limit)
		<-done
		if err != nil {
			t.Fatal(err)
		}
		return flows, total
	}
	all, total := query(FlowFilter{}, 0, 10)
	if total != 3 || len(all) != 3 {
		t.Fatalf("all flows: %d of %d, want 3: %+v", len(all), total, all)
	}
	states := map[string]string{}
	for _, f := range all {
		states[f.Client] = f.State + "/" + f.Backend
	}
	want := map[string]string{
		"198.18.0.10:45000": "spliced/be2",
		"198.18.0.10:45001": "request/",
		"198.18.0.10:45002": "handing_off/be1",
	}
	for k, v := range want {
		if states[k] != v {
			t.Errorf("flow %s: %q, want %q (all: %v)", k, states[k], v, states)
		}
	}
	for _, tt := range []struct {
		name   string
		filter FlowFilter
		want   int
	}{
		{"by back-end", FlowFilter{Backend: "be2"}, 1},
		{"by state", FlowFilter{State: "request"}, 1},
		{"by client", FlowFilter{Client: netip.AddrFrom4(testClientIP)}, 3},
		{"by client and port", FlowFilter{Client: netip.AddrFrom4(testClientIP), Port: 45002}, 1},
		{"other client", FlowFilter{Client: netip.MustParseAddr("198.18.0.99")}, 0},
	} {
		if _, n := query(tt.filter, 0, 10); n != tt.want {
			t.Errorf("%s: %d flows, want %d", tt.name, n, tt.want)
		}
	}
	page, total := query(FlowFilter{}, 1, 1)
	if total != 3 || len(page) != 1 || page[0] != all[1] {
		t.Errorf("page (offset 1, limit 1): %+v of %d, want [%+v] of 3", page, total, all[1])
	}
	if all[1].Idle < 0.2 {
		t.Errorf("idle %.3f s, want at least the 0.2 s the clock moved", all[1].Idle)
	}
}

// TestCapture captures the frames a shard receives and checks them byte
// for byte, and that the capture stops at its count.
func TestCapture(t *testing.T) {
	h := newHarness(t)
	sw := &Switch{shards: []*Shard{h.s}}
	type result struct {
		frames [][]byte
		err    error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		_, _, r.err = sw.Capture(context.Background(), 2, func(f CapturedFrame) error {
			r.frames = append(r.frames, f.Data)
			return nil
		})
		res <- r
	}()
	for h.s.capture.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	var script []byte
	h.script = &script
	c := h.client(45100)
	c.handshake() // SYN and ACK: the two frames
	c.data(header.FlagPSH, "GET")
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.frames) != 2 {
		t.Fatalf("captured %d frames, want 2", len(r.frames))
	}
	// The recorded script holds op, length, frame for each client frame.
	for i, f := range r.frames {
		n := int(script[1])<<8 | int(script[2])
		if !bytes.Equal(f, script[3:3+n]) {
			t.Errorf("frame %d differs from what the client sent", i)
		}
		script = script[3+n:]
	}
	if h.s.capture.Load() != nil {
		t.Error("capture still installed after it ended")
	}
}
