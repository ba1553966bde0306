package shard

import (
	"testing"
	"time"

	"webswitch/internal/mono"
	"webswitch/tcpfsm"
	"webswitch/tcpfsm/header"
)

// TestDrain: once draining, a SYN gets a RST and makes nothing, while a
// handshake begun before completes and its request is handed off, and a
// spliced flow goes on being forwarded.
func TestDrain(t *testing.T) {
	h := newHarness(t)
	const req = "GET /static/a HTTP/1.1\r\nHost: x\r\n\r\n"
	spliced := h.client(46000)
	spliced.splice(0, req)
	begun := h.client(46001)
	begun.send(begun.isn, 0, header.FlagSYN, "")
	out := h.tx.take()
	begun.iss = parseFrame(t, out[0]).seq

	h.s.draining.Store(true)
	late := h.client(46002)
	late.send(late.isn, 0, header.FlagSYN, "")
	out = h.tx.take()
	if len(out) != 1 {
		t.Fatalf("SYN while draining answered with %d frames, want one RST", len(out))
	}
	if f := parseFrame(t, out[0]); f.flags != header.FlagRST|header.FlagACK || f.ack != late.isn+1 {
		t.Errorf("SYN while draining answered %+v, want RST+ACK of the SYN", f)
	}
	if n := h.s.C.Drops[DropDraining].Load(); n != 1 {
		t.Errorf("draining drops %d, want 1", n)
	}

	begun.send(begun.isn+1, begun.iss+1, header.FlagACK, "")
	begun.data(header.FlagPSH, req)
	id, _, _ := h.handoff(0)
	h.answer(0, id, true)
	h.tx.take()
	spliced.data(0, "")
	if f := h.tx.take(); len(f) != 1 || parseFrame(t, f[0]).dstMAC != testBackendMAC(0) {
		t.Errorf("spliced flow while draining: %d frames, want one to be1", len(f))
	}
	if n := h.s.C.SplicedFlows.Load(); n != 2 {
		t.Errorf("%d spliced flows, want the old one and the handshake begun before the drain", n)
	}
}

// TestCookieKeyShared: switches that share the secret accept each other's
// SYN cookies, and a restarted switch those it made before; another
// secret does not.
func TestCookieKeyShared(t *testing.T) {
	tuple := tcpfsm.Tuple{ClientIP: testClientIP, VIP: testVIP, ClientPort: 40000, VIPPort: 80}
	o := header.SynOptions{MSS: 1460, WScale: 7, WScaleOK: true, SACKOK: true}
	now := mono.Time(100 * time.Second)
	a := tcpfsm.NewCookies(cookieKey(testSecret))
	cookie := a.Make(now, &tuple, 1000, &o)
	var got header.SynOptions
	if b := tcpfsm.NewCookies(cookieKey(append([]byte(nil), testSecret...))); !b.Check(now, &tuple, 1000, cookie, &got) {
		t.Error("a switch with the same secret refused the cookie")
	}
	if c := tcpfsm.NewCookies(cookieKey([]byte("another secret, 32 bytes long..."))); c.Check(now, &tuple, 1000, cookie, &got) {
		t.Error("a switch with another secret accepted the cookie")
	}
}
