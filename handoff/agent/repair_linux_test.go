package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"webswitch/handoff"
	"webswitch/internal/sys"
	"webswitch/serve"
)

var netnsSeq atomic.Uint32

// newNetns creates a network namespace named wsHD<pid>-<n> with lo up and the
// given addresses on lo, deleted when the test ends. It skips the test when
// not root.
func newNetns(t *testing.T, addrs ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and uses TCP_REPAIR")
	}
	name := fmt.Sprintf("wsHD%d-%d", os.Getpid(), netnsSeq.Add(1))
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ip("-n", name, "link", "set", "lo", "up")
	for _, a := range addrs {
		ip("-n", name, "addr", "add", a, "dev", "lo")
	}
	return name
}

// dropResets makes namespace ns drop the TCP resets it sends. Recreate ends
// with a window probe; when the test re-creates the first of two facing
// sockets, the probe finds no peer and the kernel's reset would kill it. On a
// real back-end the peer is the client, which answers with an ACK.
func dropResets(t *testing.T, ns string) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft to drop resets in the test namespace")
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet wstest {
	chain out {
		type filter hook output priority 0; policy accept;
		tcp flags & rst == rst drop
	}
}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", ns, err, out)
	}
}

// inNetns runs fn on a locked OS thread that has joined namespace ns. The
// thread is never unlocked, so the runtime discards it when fn returns.
// Sockets created by fn stay in ns whatever thread uses them later.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// mirrorState returns the state of the other end of st's connection, after the
// client sent the request: its send sequence continues after the request.
func mirrorState(st handoff.ConnState) handoff.ConnState {
	return handoff.ConnState{
		Client: st.VIP, VIP: st.Client,
		SndISN: st.RcvIRS, SndNxt: st.RcvNxt,
		RcvIRS: st.SndISN, RcvNxt: st.SndNxt,
		SndWnd: st.RcvWnd, RcvWnd: st.SndWnd,
		MSS:       st.MSS,
		SndWScale: st.RcvWScale, RcvWScale: st.SndWScale,
		WScaleOK: st.WScaleOK, SACKOK: st.SACKOK,
	}
}

// tcpiOptSACK is TCPI_OPT_SACK in tcp_info's options (linux/tcp.h).
const tcpiOptSACK = 2

// wscales returns tcp_info's tcpi_snd_wscale and tcpi_rcv_wscale: 4-bit
// fields in the byte after tcpi_options, which unix.TCPInfo leaves as padding.
func wscales(info *unix.TCPInfo) (snd, rcv uint8) {
	b := *(*uint8)(unsafe.Add(unsafe.Pointer(info), unsafe.Offsetof(info.Options)+1))
	return b & 0xf, b >> 4
}

// tcpInfo returns c's TCP_INFO.
func tcpInfo(c net.Conn) (*unix.TCPInfo, error) {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return info, ierr
}

func TestRecreate(t *testing.T) {
	const bulk = 10 << 20
	request := []byte("GET / HTTP/1.1\r\nHost: example.test\r\nUser-Agent: repair-test\r\n\r\n")
	bigRequest := bytes.Repeat([]byte("POST body bytes "), 64<<10/16) // 64 KiB: several pages
	tests := []struct {
		name     string
		mss      uint16
		wscale   bool
		sack     bool
		window   uint32
		request  []byte
		isn, irs uint32
	}{
		{name: "wscale sack mss 1460", mss: 1460, wscale: true, sack: true, window: 512 << 10, request: request, isn: 1000, irs: 5000},
		{name: "wscale mss 536", mss: 536, wscale: true, window: 256 << 10, request: request, isn: 0xfffffff0, irs: 77},
		{name: "sack no wscale mss 1460", mss: 1460, sack: true, window: 65535, request: request, isn: 42, irs: 0xffffffff},
		{name: "plain mss 536", mss: 536, window: 29200, request: request, isn: 7, irs: 0x80000000},
		{name: "large request", mss: 1460, wscale: true, sack: true, window: 512 << 10, request: bigRequest, isn: 123, irs: 456},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNetns(t, "198.18.0.100/32", "198.18.0.10/32")
			dropResets(t, ns)
			be := handoff.ConnState{
				Client: netip.MustParseAddrPort("198.18.0.10:40000"),
				VIP:    netip.MustParseAddrPort("198.18.0.100:80"),
				SndISN: tt.isn, SndNxt: tt.isn + 1,
				RcvIRS: tt.irs, RcvNxt: tt.irs + 1 + uint32(len(tt.request)),
				SndWnd: tt.window, RcvWnd: tt.window,
				MSS:      tt.mss,
				WScaleOK: tt.wscale, SACKOK: tt.sack,
			}
			if tt.wscale {
				be.SndWScale, be.RcvWScale = 7, 9
			}
			cl := mirrorState(be)

			var backend, client net.Conn
			var lis net.Listener
			var info *unix.TCPInfo // the back-end's, before any packet reached it
			err := inNetns(ns, func() error {
				var err error
				// An ordinary listener holding the port must not stop Recreate.
				if lis, err = net.Listen("tcp4", "0.0.0.0:80"); err != nil {
					return err
				}
				if backend, err = Recreate(&be, tt.request); err != nil {
					return err
				}
				if info, err = tcpInfo(backend); err != nil {
					return err
				}
				if client, err = Recreate(&cl, nil); err != nil {
					return err
				}
				if c, err := Recreate(&be, tt.request); err == nil {
					c.Close()
					return fmt.Errorf("second Recreate of %s-%s succeeded", be.VIP, be.Client)
				} else {
					t.Logf("second Recreate: %v", err)
				}
				return nil
			})
			if lis != nil {
				defer lis.Close()
			}
			if backend != nil {
				defer backend.Close()
			}
			if client != nil {
				defer client.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			backend.SetDeadline(deadline)
			client.SetDeadline(deadline)

			if got, want := backend.LocalAddr().String(), be.VIP.String(); got != want {
				t.Errorf("LocalAddr = %s, want %s", got, want)
			}
			if got, want := backend.RemoteAddr().String(), be.Client.String(); got != want {
				t.Errorf("RemoteAddr = %s, want %s", got, want)
			}
			// The window probe sent on leaving repair may grow the receive
			// window, never shrink what the switch advertised.
			if info.Snd_wnd != be.SndWnd || info.Rcv_wnd < be.RcvWnd {
				t.Errorf("windows snd %d rcv %d, want %d and at least %d", info.Snd_wnd, info.Rcv_wnd, be.SndWnd, be.RcvWnd)
			}
			if got := info.Options&tcpiOptSACK != 0; got != tt.sack {
				t.Errorf("SACK = %v, want %v", got, tt.sack)
			}
			// Without scaling both scales are 0, which is what the client applies.
			if snd, rcv := wscales(info); snd != be.SndWScale || rcv != be.RcvWScale {
				t.Errorf("window scales snd %d rcv %d, want %d %d", snd, rcv, be.SndWScale, be.RcvWScale)
			}
			if info.Snd_mss > uint32(tt.mss) {
				t.Errorf("send MSS %d > %d", info.Snd_mss, tt.mss)
			}

			got := make([]byte, len(tt.request))
			if _, err := io.ReadFull(backend, got); err != nil {
				t.Fatalf("backend reading the request: %v", err)
			}
			if !bytes.Equal(got, tt.request) {
				t.Fatalf("backend read %q, want %q", got, tt.request)
			}

			// A small message each way.
			exchangeMsg(t, client, backend, []byte("more from the client"))
			exchangeMsg(t, backend, client, []byte("HTTP/1.1 200 OK\r\n\r\n"))

			// A large response: needs the restored send window and scale.
			payload := make([]byte, bulk)
			rand.Read(payload)
			errc := make(chan error, 1)
			go func() {
				_, err := backend.Write(payload)
				errc <- err
			}()
			h := sha256.New()
			if n, err := io.CopyN(h, client, bulk); err != nil {
				t.Fatalf("client read %d of %d bytes: %v", n, bulk, err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("backend write: %v", err)
			}
			if got, want := h.Sum(nil), sha256.Sum256(payload); !bytes.Equal(got, want[:]) {
				t.Fatal("10 MiB payload corrupted")
			}

			// Half-close from the client reaches the back-end as EOF.
			if err := client.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if n, err := backend.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("backend read after client FIN: %d, %v; want EOF", n, err)
			}
		})
	}
}

// exchangeMsg writes msg on from and checks that to reads exactly msg.
func exchangeMsg(t *testing.T, from, to net.Conn, msg []byte) {
	t.Helper()
	if _, err := from.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(to, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("read %q, want %q", got, msg)
	}
}

func TestRecreateErrors(t *testing.T) {
	st := handoff.ConnState{
		Client: netip.MustParseAddrPort("198.18.0.10:40000"),
		VIP:    netip.MustParseAddrPort("198.18.0.100:80"),
		MSS:    1460,
	}
	v6 := st
	v6.VIP = netip.MustParseAddrPort("[2001:db8::1]:80")
	noMSS := st
	noMSS.MSS = 0
	for _, tt := range []struct {
		name string
		st   handoff.ConnState
		want error
	}{
		{name: "IPv6", st: v6, want: errNotIPv4},
		{name: "no MSS", st: noMSS, want: errNoMSS},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Recreate(&tt.st, nil)
			if err != tt.want {
				if c != nil {
					c.Close()
				}
				t.Fatalf("Recreate = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRecreateBindError(t *testing.T) {
	ns := newNetns(t) // 198.18.0.100 is not local here
	st := handoff.ConnState{
		Client: netip.MustParseAddrPort("198.18.0.10:40000"),
		VIP:    netip.MustParseAddrPort("198.18.0.100:80"),
		MSS:    1460,
	}
	err := inNetns(ns, func() error {
		c, err := Recreate(&st, nil)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil || !strings.HasPrefix(err.Error(), "repair: bind 198.18.0.100:80: ") {
		t.Fatalf("Recreate = %v, want a bind error", err)
	}
}

// TestRecreateServeStatic runs the agent's side end to end: a re-created
// connection whose request is already queued is delivered through a Listener
// to a Static server, which answers it and a keep-alive request after it.
func TestRecreateServeStatic(t *testing.T) {
	ns := newNetns(t, "198.18.0.100/32", "198.18.0.10/32")
	dropResets(t, ns)
	root := t.TempDir()
	file := make([]byte, 2<<20)
	rand.Read(file)
	if err := os.WriteFile(filepath.Join(root, "f.bin"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	request := []byte("GET /f.bin HTTP/1.1\r\nHost: example.test\r\n\r\n")
	be := handoff.ConnState{
		Client: netip.MustParseAddrPort("198.18.0.10:40001"),
		VIP:    netip.MustParseAddrPort("198.18.0.100:80"),
		SndISN: 9, SndNxt: 10,
		RcvIRS: 99, RcvNxt: 100 + uint32(len(request)),
		SndWnd: 64 << 10, RcvWnd: 64 << 10,
		MSS: 1460, SndWScale: 7, RcvWScale: 7, WScaleOK: true, SACKOK: true,
	}
	cl := mirrorState(be)
	var backend, client net.Conn
	err := inNetns(ns, func() error {
		var err error
		if backend, err = Recreate(&be, request); err != nil {
			return err
		}
		client, err = Recreate(&cl, nil)
		return err
	})
	if client != nil {
		defer client.Close()
	}
	if err != nil {
		if backend != nil {
			backend.Close()
		}
		t.Fatal(err)
	}
	static, err := serve.NewStatic(root)
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(net.TCPAddrFromAddrPort(be.VIP))
	go static.Serve(l)
	t.Cleanup(func() { static.Shutdown(context.Background()) })
	l.Deliver(backend)

	client.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(client)
	for i := range 2 {
		if i > 0 { // the first request was queued by Recreate
			if _, err := client.Write(request); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("response %d body: %v", i, err)
		}
		if resp.StatusCode != http.StatusOK || sha256.Sum256(body) != sha256.Sum256(file) {
			t.Fatalf("response %d: status %d, %d body bytes; want 200 and the file", i, resp.StatusCode, len(body))
		}
	}
	client.Close()
	waitFor(t, "the served connection to close", func() bool { return l.Active() == 0 })
}

// TestRecreateReplacesTimeWait: a client that reuses its port while the
// back-end still holds the previous connection in TIME_WAIT (the back-end
// closed first, as HTTP servers do) gets its new connection re-created.
func TestRecreateReplacesTimeWait(t *testing.T) {
	ns := newNetns(t, "198.18.0.100/32", "198.18.0.10/32")
	dropResets(t, ns)
	state := func(isn, irs uint32) handoff.ConnState {
		return handoff.ConnState{
			Client: netip.MustParseAddrPort("198.18.0.10:40001"),
			VIP:    netip.MustParseAddrPort("198.18.0.100:80"),
			SndISN: isn, SndNxt: isn + 1, RcvIRS: irs, RcvNxt: irs + 1,
			SndWnd: 65535, RcvWnd: 65535, MSS: 1460,
		}
	}
	pair := func(be handoff.ConnState) (backend, client net.Conn) {
		t.Helper()
		cl := mirrorState(be)
		err := inNetns(ns, func() error {
			var err error
			if backend, err = Recreate(&be, nil); err != nil {
				return err
			}
			client, err = Recreate(&cl, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		backend.SetDeadline(time.Now().Add(5 * time.Second))
		client.SetDeadline(time.Now().Add(5 * time.Second))
		return backend, client
	}
	backend, client := pair(state(1000, 5000))
	exchangeMsg(t, backend, client, []byte("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"))
	backend.Close() // the server closes first ...
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read after the server's FIN: %v", err)
	}
	client.Close() // ... and keeps the 4-tuple in TIME_WAIT
	waitTimeWait(t, ns, "198.18.0.100:80", true)

	backend, client = pair(state(900_000, 700_000))
	defer backend.Close()
	defer client.Close()
	exchangeMsg(t, client, backend, []byte("GET / HTTP/1.1\r\n\r\n"))
	exchangeMsg(t, backend, client, []byte("HTTP/1.1 200 OK\r\n\r\n"))
	waitTimeWait(t, ns, "198.18.0.100:80", false)
}

// waitTimeWait waits until namespace ns has (or no longer has) a TIME_WAIT
// socket bound to local.
func waitTimeWait(t *testing.T, ns, local string, want bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		out, err := exec.Command("ip", "netns", "exec", ns, "ss", "-Htn", "state", "time-wait", "src", local).CombinedOutput()
		if err != nil {
			t.Fatalf("ss: %v: %s", err, out)
		}
		if got := len(bytes.TrimSpace(out)) > 0; got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("TIME_WAIT on %s: %v, want %v", local, !want, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRecreateTakesRTTSample: the re-created socket measures the RTT at
// once (the byte it sends again, step 9 of repair), so it does not start
// with the kernel's 3 s fallback RTO.
func TestRecreateTakesRTTSample(t *testing.T) {
	ns := newNetns(t, "198.18.0.100/32", "198.18.0.10/32")
	dropResets(t, ns) // the peer, re-created first, sends its own byte to no socket
	be := handoff.ConnState{
		Client: netip.MustParseAddrPort("198.18.0.10:40002"),
		VIP:    netip.MustParseAddrPort("198.18.0.100:80"),
		SndISN: 555, SndNxt: 556, RcvIRS: 777, RcvNxt: 778,
		SndWnd: 65535, RcvWnd: 65535, MSS: 1460,
	}
	cl := mirrorState(be)
	var backend, client net.Conn
	err := inNetns(ns, func() error {
		var err error
		if client, err = Recreate(&cl, nil); err != nil { // the peer first: it must answer the byte
			return err
		}
		backend, err = Recreate(&be, nil)
		return err
	})
	if client != nil {
		defer client.Close()
	}
	if backend != nil {
		defer backend.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	for deadline := time.Now().Add(2 * time.Second); ; {
		if info, err = tcpInfo(backend); err != nil {
			t.Fatal(err)
		}
		if info.Rtt > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("back-end socket: rtt %d us, rto %d us", info.Rtt, info.Rto)
	if info.Rtt == 0 || info.Rto >= 1_000_000 {
		t.Errorf("no RTT sample: rtt %d us, rto %d us; want a sample and an RTO under 1 s", info.Rtt, info.Rto)
	}
	// The byte was a duplicate for the client: the stream starts clean.
	exchangeMsg(t, backend, client, []byte("HTTP/1.1 200 OK\r\n\r\n"))
}

// TestTuneControl checks that the agent's end of a control connection gets
// the short minimum retransmission timeout too.
func TestTuneControl(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := net.Dial("tcp4", l.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tuneControl(c)
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var us int
	var gerr error
	rc.Control(func(fd uintptr) { us, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_RTO_MIN_US) })
	if errors.Is(gerr, unix.ENOPROTOOPT) {
		t.Skip("this kernel has no TCP_RTO_MIN_US (Linux 6.15 and later)")
	}
	if got := time.Duration(us) * time.Microsecond; gerr != nil || got < sys.ControlRTOMin || got > sys.ControlRTOMin+10*time.Millisecond {
		t.Errorf("TCP_RTO_MIN_US = %v, %v; want %v rounded up to a clock tick", got, gerr, sys.ControlRTOMin)
	}
}

// TestAgentListenerAddrs hands off connections to two ports of the VIP
// through an agent and its listener, as handoffd and httpagent run them: each
// accepted connection's LocalAddr is the VIP and port its client connected
// to, and the listener's Addr claims no port, for it serves them all.
func TestAgentListenerAddrs(t *testing.T) {
	ns := newNetns(t, "198.18.0.100/32", "198.18.0.10/32")
	dropResets(t, ns) // the probe byte finds no client socket
	vip := netip.MustParseAddr("198.18.0.100")
	a, l := New(testSecret, vip, zerolog.Nop())
	defer l.Close()
	a.Recreate = func(st *handoff.ConnState, request []byte) (c net.Conn, err error) {
		err = inNetns(ns, func() error {
			c, err = Recreate(st, request)
			return err
		})
		return c, err
	}
	ctl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve(ctl)
	defer a.Close()
	ts, err := dialSwitch(t, ctl.Addr().String(), testSecret)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	request := []byte("GET / HTTP/1.1\r\n\r\n")
	for i, port := range []uint16{443, 80} {
		st := testState(len(request))
		st.VIP = netip.AddrPortFrom(vip, port)
		st.Client = netip.AddrPortFrom(st.Client.Addr(), 40000+port)
		if err := ts.s.SendHandoff(uint64(i), &st, request); err != nil {
			t.Fatal(err)
		}
		if err := ts.flush(); err != nil {
			t.Fatal(err)
		}
		if m := ts.reply(); m.Type != handoff.MsgOK {
			t.Fatalf("port %d: %v %q, want OK", port, m.Type, m.Body)
		}
		c, err := acceptTimeout(t, l)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.LocalAddr().String(); got != st.VIP.String() {
			t.Errorf("port %d: LocalAddr = %s, want %s", port, got, st.VIP)
		}
		if got := c.RemoteAddr().String(); got != st.Client.String() {
			t.Errorf("port %d: RemoteAddr = %s, want %s", port, got, st.Client)
		}
	}
	if got, want := l.Addr().String(), "198.18.0.100:0"; got != want {
		t.Errorf("listener Addr = %s, want %s (the VIP, any port)", got, want)
	}
}
