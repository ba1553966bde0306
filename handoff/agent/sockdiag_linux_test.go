package agent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"webswitch/handoff"
)

// The sock_diag lookups need no privilege: these tests look up real
// loopback connections of the test process itself.

// listen4 listens on a loopback port until the test ends.
func listen4(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// connect opens a connection to l and returns both ends, closed when the
// test ends.
func connect(t testing.TB, l net.Listener) (client, server net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// flowOf names the connection c is the back-end's end of: c's peer is the
// client, c's own address the VIP.
func flowOf(c net.Conn) handoff.FlowID {
	return handoff.FlowID{
		Client: c.RemoteAddr().(*net.TCPAddr).AddrPort(),
		VIP:    c.LocalAddr().(*net.TCPAddr).AddrPort(),
	}
}

func newTestDiag(t testing.TB) *Diag {
	t.Helper()
	d := NewDiag()
	t.Cleanup(func() { d.Close() })
	return d
}

func lookupOne(t *testing.T, d *Diag, id handoff.FlowID) handoff.Owner {
	t.Helper()
	o, err := d.Lookup([]handoff.FlowID{id}, nil)
	if err != nil || len(o) != 1 {
		t.Fatalf("Lookup %v: %v, %v", id, o, err)
	}
	return o[0]
}

// waitState looks id up until its owner is in state want and returns it.
func waitState(t *testing.T, d *Diag, id handoff.FlowID, want handoff.SockState) handoff.Owner {
	t.Helper()
	var o handoff.Owner
	waitFor(t, fmt.Sprintf("%v in state %d", id, want), func() bool {
		o = lookupOne(t, d, id)
		return o.State == want
	})
	return o
}

// reverse names the connection of id as its client's end holds it.
func reverse(id handoff.FlowID) handoff.FlowID { return handoff.FlowID{Client: id.VIP, VIP: id.Client} }

// TestDiagLookupLife follows one connection the back-end closes first, as
// HTTP servers do, through the states each end goes through, looking up
// both ends.
func TestDiagLookupLife(t *testing.T) {
	d := newTestDiag(t)
	l := listen4(t)
	client, server := connect(t, l)
	id := flowOf(server)

	// ESTABLISHED, idle since the handshake's last ACK ...
	time.Sleep(100 * time.Millisecond)
	o := lookupOne(t, d, id)
	if o.State != handoff.SockEstablished || o.IdleMS < 80 || o.IdleMS > 5000 {
		t.Errorf("after 100 ms: %+v, want ESTABLISHED idle about 100 ms", o)
	}
	// ... and no longer once the client sends.
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if o := lookupOne(t, d, id); o.State != handoff.SockEstablished || o.IdleMS > 50 {
		t.Errorf("after the client's byte: %+v, want ESTABLISHED idle under 50 ms", o)
	}

	// The back-end closes first. Its end, orphaned, waits for the
	// client's FIN in FIN_WAIT2: a full socket with tcp_info, or, when
	// tcp_fin_timeout is not above the TIME_WAIT length (the default),
	// a TIME_WAIT socket in its FIN_WAIT2 substate, which has none.
	server.Close()
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("the client read a byte; want EOF")
	}
	waitState(t, d, id, handoff.SockFinWait2)
	if o := waitState(t, d, reverse(id), handoff.SockCloseWait); o.IdleMS > 5000 {
		t.Errorf("client's end: %+v, want CLOSE_WAIT just heard from", o)
	}

	// The client closes: the back-end's end keeps the 4-tuple in
	// TIME_WAIT, without tcp_info; the client's end is gone.
	client.Close()
	if o := waitState(t, d, id, handoff.SockTimeWait); o.IdleMS != handoff.NoIdle {
		t.Errorf("back-end's end: %+v, want TIME_WAIT with NoIdle", o)
	}
	waitState(t, d, reverse(id), handoff.SockNone)
}

// TestDiagLookupListenerIsNoOwner: the kernel answers a lookup of an
// unknown client on a port something listens on with the listener, which
// owns no connection.
func TestDiagLookupListenerIsNoOwner(t *testing.T) {
	l := listen4(t)
	vip := l.Addr().(*net.TCPAddr).AddrPort()
	stranger := netip.MustParseAddrPort("127.0.0.1:9")

	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	msg, err := sockDiag(fd, unix.SOCK_DIAG_BY_FAMILY, vip, stranger, [2]uint32{inetDiagNoCookie, inetDiagNoCookie})
	if err != nil || len(msg) < inetDiagMsgLen || msg[1] != 10 {
		t.Fatalf("the kernel's own answer: %x, %v; want a socket in LISTEN (10)", msg, err)
	}

	if o := lookupOne(t, newTestDiag(t), handoff.FlowID{Client: stranger, VIP: vip}); o != (handoff.Owner{}) {
		t.Errorf("Lookup = %+v, want no owner", o)
	}
}

// TestDiagLookupDualStack: a server listening on [::], as many do, holds
// its IPv4 clients' connections in IPv6 sockets; the IPv4 lookup finds
// them, and its fallback to that listener is no owner either.
func TestDiagLookupDualStack(t *testing.T) {
	l, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Skipf("no IPv6: %v", err)
	}
	defer l.Close()
	vip := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(l.Addr().(*net.TCPAddr).Port))
	client, err := net.Dial("tcp4", vip.String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	ids := []handoff.FlowID{
		reverse(flowOf(client)),
		{Client: netip.MustParseAddrPort("127.0.0.1:9"), VIP: vip},
	}
	got, err := newTestDiag(t).Lookup(ids, nil)
	if err != nil || len(got) != 2 || got[0].State != handoff.SockEstablished || got[1] != (handoff.Owner{}) {
		t.Errorf("Lookup = %+v, %v; want ESTABLISHED, then no owner", got, err)
	}
}

// TestDiagLookupBatch: a full batch of connections held and not held, in
// mixed order, is answered in order.
func TestDiagLookupBatch(t *testing.T) {
	l := listen4(t)
	vip := l.Addr().(*net.TCPAddr).AddrPort()
	gone := listen4(t)
	closed := gone.Addr().(*net.TCPAddr).AddrPort()
	gone.Close() // a port nothing listens on
	ids := make([]handoff.FlowID, handoff.MaxLookup)
	held := make([]bool, len(ids))
	for i := range ids {
		switch i % 3 {
		case 0:
			_, server := connect(t, l)
			ids[i], held[i] = flowOf(server), true
		case 1: // the listener's port: the kernel answers with the listener
			ids[i] = handoff.FlowID{Client: netip.AddrPortFrom(vip.Addr(), uint16(1000+i)), VIP: vip}
		case 2: // nothing there at all: ENOENT
			ids[i] = handoff.FlowID{Client: netip.AddrPortFrom(vip.Addr(), uint16(1000+i)), VIP: closed}
		}
	}
	rand.Shuffle(len(ids), func(i, j int) {
		ids[i], ids[j] = ids[j], ids[i]
		held[i], held[j] = held[j], held[i]
	})
	prefix := handoff.Owner{State: handoff.SockClosing, IdleMS: 7}
	got, err := newTestDiag(t).Lookup(ids, []handoff.Owner{prefix})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+len(ids) || got[0] != prefix {
		t.Fatalf("Lookup returned %d owners after %+v, want %d after %+v", len(got)-1, got[0], len(ids), prefix)
	}
	for i, o := range got[1:] {
		if held[i] && (o.State != handoff.SockEstablished || o.IdleMS > 5000) || !held[i] && o != (handoff.Owner{}) {
			t.Errorf("ids[%d] %v (held %v): %+v", i, ids[i], held[i], o)
		}
	}
}

func TestDiagLookupErrors(t *testing.T) {
	l := listen4(t)
	_, server := connect(t, l)
	id := flowOf(server)
	d := newTestDiag(t)
	v6 := handoff.FlowID{Client: netip.MustParseAddrPort("[2001:db8::1]:4000"), VIP: id.VIP}
	for name, ids := range map[string][]handoff.FlowID{
		"IPv6":     {id, v6},
		"too many": make([]handoff.FlowID, handoff.MaxLookup+1),
	} {
		if o, err := d.Lookup(ids, nil); err == nil || len(o) != 0 {
			t.Errorf("%s: %v, %v; want an error", name, o, err)
		}
	}
	if o := lookupOne(t, d, id); o.State != handoff.SockEstablished {
		t.Errorf("after the refused batches: %+v, want ESTABLISHED", o)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if o, err := d.Lookup([]handoff.FlowID{id}, nil); !errors.Is(err, net.ErrClosed) || len(o) != 0 {
		t.Errorf("after Close: %v, %v; want net.ErrClosed", o, err)
	}
}

// TestNewLooksUp: the Agent New returns answers LOOKUPs from this host's
// kernel.
func TestNewLooksUp(t *testing.T) {
	_, server := connect(t, listen4(t))
	a, _ := New([]byte("secret"), netip.MustParseAddr("127.0.0.1"), zerolog.Nop())
	o, err := a.Lookup([]handoff.FlowID{flowOf(server)}, nil)
	if err != nil || len(o) != 1 || o[0].State != handoff.SockEstablished {
		t.Errorf("Lookup = %+v, %v; want one ESTABLISHED owner", o, err)
	}
}

// TestOwnerState: only the states in which a socket holds a client
// connection make an owner.
func TestOwnerState(t *testing.T) {
	// Linux's TCP states (include/net/tcp_states.h).
	want := map[uint8]handoff.SockState{
		1: handoff.SockEstablished, 2: handoff.SockNone, 3: handoff.SockNone, 4: handoff.SockFinWait1,
		5: handoff.SockFinWait2, 6: handoff.SockTimeWait, 7: handoff.SockNone, 8: handoff.SockCloseWait,
		9: handoff.SockLastAck, 10: handoff.SockNone, 11: handoff.SockClosing, 12: handoff.SockNone,
		13: handoff.SockNone, 0: handoff.SockNone, 255: handoff.SockNone,
	}
	for s, w := range want {
		if got := ownerState(s); got != w {
			t.Errorf("ownerState(%d) = %d, want %d", s, got, w)
		}
	}
}

// fullBatch returns a Diag and MaxLookup ids, each of an open connection
// when held, else of a client the listener does not know.
func fullBatch(t testing.TB, held bool) (*Diag, []handoff.FlowID) {
	t.Helper()
	l := listen4(t)
	ids := make([]handoff.FlowID, handoff.MaxLookup)
	for i := range ids {
		if held {
			_, server := connect(t, l)
			ids[i] = flowOf(server)
		} else {
			vip := l.Addr().(*net.TCPAddr).AddrPort()
			ids[i] = handoff.FlowID{Client: netip.AddrPortFrom(vip.Addr(), uint16(1000+i)), VIP: vip}
		}
	}
	return newTestDiag(t), ids
}

func TestDiagLookupNoAllocs(t *testing.T) {
	d, ids := fullBatch(t, true)
	out := make([]handoff.Owner, 0, len(ids))
	if _, err := d.Lookup(ids, out); err != nil { // opens the socket
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := d.Lookup(ids, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup of %d connections: %v allocations, want 0", len(ids), allocs)
	}
}

func BenchmarkDiagLookup(b *testing.B) {
	for _, held := range []bool{true, false} {
		name := map[bool]string{true: "established", false: "none"}[held]
		b.Run(name, func(b *testing.B) {
			d, ids := fullBatch(b, held)
			out := make([]handoff.Owner, 0, len(ids))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Lookup(ids, out); err != nil {
					b.Fatal(err)
				}
			}
			lookups := float64(b.N * len(ids))
			b.ReportMetric(lookups/b.Elapsed().Seconds(), "lookups/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/lookups, "ns/lookup")
		})
	}
}
