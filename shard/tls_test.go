package shard

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"webswitch/l7"
	"webswitch/tcpfsm/header"
)

// clientHello returns the first bytes a TLS client sends for serverName.
func clientHello(t *testing.T, serverName string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go tls.Client(c, &tls.Config{ServerName: serverName, NextProtos: []string{"h2", "http/1.1"}}).Handshake()
	buf := make([]byte, 16<<10)
	n, err := s.Read(buf) // the ClientHello, written at once
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	return buf[:n]
}

// TestTLS hands off a TLS connection routed by its server name, with the
// whole ClientHello, sent in two segments.
func TestTLS(t *testing.T) {
	h := newHarness(t)
	hello := clientHello(t, "tls.example")
	c := h.client(46000)
	c.vipPort = 443
	c.handshake()
	c.data(header.FlagPSH, string(hello[:40]))
	h.pump()
	if len(h.agents[1].Msgs) != 0 {
		t.Fatal("handed off before the ClientHello was complete")
	}
	h.tx.take() // the switch's ACK of the first part
	c.data(header.FlagPSH, string(hello[40:]))
	id, st, req := h.handoff(1) // pool "web": be2
	if string(req) != string(hello) || st.VIP.Port() != 443 {
		t.Fatalf("handoff of %d bytes to port %d, want the %d-byte ClientHello to 443", len(req), st.VIP.Port(), len(hello))
	}
	h.answer(1, id, true)
	c.data(0, "")
	if f := h.tx.take(); len(f) != 1 || parseFrame(t, f[0]).dstMAC != testBackendMAC(1) {
		t.Fatalf("after the handoff: %d frames, want one to be2", len(f))
	}
}

// TestTLSRefusals closes, without an answer the client could not read,
// the connections the switch cannot hand off: the wrong protocol for the
// port, a malformed ClientHello, a name no rule takes.
func TestTLSRefusals(t *testing.T) {
	for _, tt := range []struct {
		name     string
		port     uint16
		payload  string
		mismatch uint64
		refused  int // status counted in TLSRefused
	}{
		{"plain HTTP on a TLS port", 443, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, 0},
		{"TLS on an HTTP port", 80, "", 1, 0}, // payload: a ClientHello
		{"malformed ClientHello", 443, "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", 0, 400},
		{"no rule for the name", 443, "", 0, 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			payload := tt.payload
			if payload == "" {
				name := "tls.example"
				if tt.refused == 404 {
					name = "other.example"
				}
				payload = string(clientHello(t, name))
			}
			c := h.client(46100)
			c.vipPort = tt.port
			c.handshake()
			c.data(header.FlagPSH, payload)
			body, fin := c.response(h.tx.take())
			if len(body) != 0 || !fin {
				t.Errorf("answer %q (FIN %v), want a bare FIN", body, fin)
			}
			if n := h.s.C.ProtocolMismatch.Load(); n != tt.mismatch {
				t.Errorf("protocol mismatches %d, want %d", n, tt.mismatch)
			}
			if tt.refused != 0 && h.s.C.TLSRefused[tt.refused].Load() != 1 {
				t.Errorf("TLS refusals %d: %d, want 1", tt.refused, h.s.C.TLSRefused[tt.refused].Load())
			}
			for status := range h.s.C.HTTPErrors {
				if n := h.s.C.HTTPErrors[status].Load(); n != 0 {
					t.Errorf("HTTP error %d counted %d times: the switch answered in HTTP", status, n)
				}
			}
			if strings.Contains(string(body), "HTTP/") {
				t.Errorf("an HTTP answer: %q", body)
			}
		})
	}
}

// TestSessionAffinity sends TLS connections to a cookie-affinity pool: a
// TLS connection's session id stands for the cookie, so a resumption (the
// same session id) goes where the session is, while new sessions spread.
func TestSessionAffinity(t *testing.T) {
	h := newHarness(t)
	h.s.cfg.Pools[1] = l7.Pool{Name: "web", Backends: []int{0, 1}, Policy: l7.PolicyCookieAffinity, Key: l7.HashKey{Kind: l7.KeyCookie, Name: "session"}}
	h.s.pickers = newPickers(h.s.cfg)
	hello := clientHello(t, "tls.example") // rule: sni tls.example -> pool 1
	const sidAt = 5 + 4 + 2 + 32           // record and handshake headers, version, random
	if hello[sidAt] != 32 {
		t.Fatalf("session id length %d, want crypto/tls's 32", hello[sidAt])
	}
	pick := func(port uint16, sid byte) int {
		t.Helper()
		for i := range 32 {
			hello[sidAt+1+i] = sid
		}
		c := h.client(port)
		c.vipPort = 443
		c.handshake()
		c.data(header.FlagPSH, string(hello))
		h.pump()
		for b, a := range h.agents {
			if len(a.Msgs) > 0 {
				id, _, _ := h.handoff(b)
				h.answer(b, id, true)
				h.tx.take()
				return b
			}
		}
		body, _ := c.response(h.tx.take())
		t.Fatalf("no handoff; the switch answered %q", body)
		return -1
	}
	first := pick(48000, 7)
	for i := range 4 { // the table holds 16 flows
		if b := pick(48001+uint16(i), 7); b != first {
			t.Fatalf("resumption %d went to be%d, the session is on be%d", i, b+1, first+1)
		}
	}
	seen := [2]int{}
	for i := range 10 {
		seen[pick(48100+uint16(i), byte(100+i))]++
	}
	if seen[0] == 0 || seen[1] == 0 {
		t.Errorf("10 new sessions went %v: want both back-ends", seen)
	}
}
