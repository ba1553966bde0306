package agent

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

var vipAddr = &net.TCPAddr{IP: net.IPv4(198, 18, 0, 100), Port: 80}

// pipeConn returns one end of a net.Pipe and closes both ends at test end.
func pipeConn(t *testing.T) (c, peer net.Conn) {
	c, peer = net.Pipe()
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

// acceptTimeout calls Accept, failing the test if it blocks for a second.
func acceptTimeout(t *testing.T, l *Listener) (net.Conn, error) {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-time.After(time.Second):
		t.Fatal("Accept blocked")
		return nil, nil
	}
}

// isClosed reports whether a net.Pipe end was closed by checking its peer
// reads EOF.
func isClosed(peer net.Conn) bool {
	peer.SetReadDeadline(time.Now().Add(time.Second))
	_, err := peer.Read(make([]byte, 1))
	return err == io.EOF
}

func TestListenerAcceptOrder(t *testing.T) {
	l := NewListener(vipAddr)
	defer l.Close()
	if l.Addr() != vipAddr {
		t.Errorf("Addr = %v, want %v", l.Addr(), vipAddr)
	}
	var conns []net.Conn
	for range 3 {
		c, _ := pipeConn(t)
		conns = append(conns, c)
		if !l.Deliver(c) {
			t.Fatal("Deliver on an open listener returned false")
		}
	}
	for i, want := range conns {
		c, err := acceptTimeout(t, l)
		if err != nil {
			t.Fatalf("Accept %d: %v", i, err)
		}
		if got := c.(interface{ NetConn() net.Conn }).NetConn(); got != want {
			t.Errorf("Accept %d returned connection %p, want %p", i, got, want)
		}
	}
}

func TestListenerCloseUnblocksAccept(t *testing.T) {
	l := NewListener(vipAddr)
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := l.Accept()
			errc <- err
		}()
	}
	time.Sleep(10 * time.Millisecond) // let both block in Accept
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 2 {
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
			}
		case <-time.After(time.Second):
			t.Fatal("Close did not unblock Accept")
		}
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
}

func TestListenerDeliverAfterClose(t *testing.T) {
	tests := []struct {
		name          string
		deliverBefore bool // delivered before Close but never accepted
	}{
		{name: "queued then closed", deliverBefore: true},
		{name: "delivered after close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewListener(vipAddr)
			c, peer := pipeConn(t)
			if tt.deliverBefore && !l.Deliver(c) {
				t.Fatal("Deliver on an open listener returned false")
			}
			l.Close()
			if !tt.deliverBefore && l.Deliver(c) {
				t.Fatal("Deliver after Close returned true")
			}
			if !isClosed(peer) {
				t.Error("connection left open")
			}
			if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept = %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestListenerActive(t *testing.T) {
	l := NewListener(vipAddr)
	defer l.Close()
	c1, _ := pipeConn(t)
	c2, _ := pipeConn(t)
	l.Deliver(c1)
	l.Deliver(c2)
	if got := l.Active(); got != 0 {
		t.Errorf("Active before Accept = %d, want 0", got)
	}
	a1, _ := acceptTimeout(t, l)
	a2, _ := acceptTimeout(t, l)
	if got := l.Active(); got != 2 {
		t.Errorf("Active after two Accepts = %d, want 2", got)
	}
	a1.Close()
	a1.Close() // a second Close must not count again
	if got := l.Active(); got != 1 {
		t.Errorf("Active after closing one = %d, want 1", got)
	}
	l.Close() // accepted connections outlive the listener
	if got := l.Active(); got != 1 {
		t.Errorf("Active after listener Close = %d, want 1", got)
	}
	a2.Close()
	if got := l.Active(); got != 0 {
		t.Errorf("Active after closing both = %d, want 0", got)
	}
}

func TestListenerConnReadFrom(t *testing.T) {
	l := NewListener(vipAddr)
	defer l.Close()
	c, peer := pipeConn(t)
	l.Deliver(c)
	a, _ := acceptTimeout(t, l)
	defer a.Close()
	const msg = "copied through ReadFrom"
	go a.(io.ReaderFrom).ReadFrom(strings.NewReader(msg)) // net.Pipe has no ReadFrom: the fallback path
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != msg {
		t.Fatalf("read %q, %v; want %q", got, err, msg)
	}
}

func TestNew(t *testing.T) {
	secret := []byte("0123456789abcdef")
	a, l := New(secret, netip.MustParseAddr("198.18.0.100"), zerolog.Nop())
	if got, want := l.Addr().String(), "198.18.0.100:0"; got != want {
		t.Errorf("Addr = %v, want %v (the VIP, any port)", got, want)
	}
	if string(a.Secret) != string(secret) || a.Recreate == nil || a.Lookup == nil {
		t.Errorf("Agent has Secret %q, Recreate %v and Lookup %v, want %q and both", a.Secret, a.Recreate != nil, a.Lookup != nil, secret)
	}
	c, peer := pipeConn(t)
	a.Deliver(c)
	ac, err := acceptTimeout(t, l)
	if err != nil {
		t.Fatal(err)
	}
	if got := ac.(interface{ NetConn() net.Conn }).NetConn(); got != c {
		t.Errorf("Accept returned connection %p, want the delivered %p", got, c)
	}
	if got := a.Active(); got != 1 {
		t.Errorf("Agent's Active = %d, want 1 (the Listener's)", got)
	}
	l.Close()
	late, latePeer := pipeConn(t)
	a.Deliver(late)
	if !isClosed(latePeer) {
		t.Error("connection handed off after Close left open")
	}
	ac.Close()
	if !isClosed(peer) {
		t.Error("accepted connection not closed by its Close")
	}
}
