package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"webswitch/bench/pktrate"
	"webswitch/bench/testbed"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

// rawClientIP is the address of the raw client: on the test LAN, so that
// the back-ends answer it directly once its connection is handed off, but
// owned by no host, so that the kernel of the attacker host, whose MAC
// address it uses, neither answers nor resets the segments sent to it (with
// ip_forward=0 it drops them silently). The back-ends reach it through a
// static neighbour entry.
const rawClientIP = "198.18.0.250"

// rawSYNOptions are the options of the raw client's SYNs: MSS 1460 alone,
// so no window scaling: window fields are bytes.
var rawSYNOptions = []byte{2, 4, 0x05, 0xb4}

const (
	rawWindow   = 65535   // the window the raw client offers
	rawFrameMax = 1 << 16 // a back-end's TSO super-frame can be this big
	rawSYNWait  = 2 * time.Second
	rawReplyMax = 3 * time.Second // for an answer that must come
	rawDrain    = 5 * time.Millisecond
)

// rawHost is the attacker host (testbed.AddAttacker) as the raw client
// uses it.
type rawHost struct {
	tb         *testbed.Testbed
	ifi        *net.Interface // the attacker's eth0
	mac, swMAC [6]byte        // the attacker's and the switch's (the VIP's) MAC addresses
	port       atomic.Uint32  // the last source port handed out
}

// newRawHost adds the attacker host to the site's testbed and gives the
// back-ends a neighbour entry for rawClientIP.
func newRawHost(t *testing.T, s *site) *rawHost {
	t.Helper()
	if err := s.tb.AddAttacker(); err != nil {
		t.Fatal(err)
	}
	h := &rawHost{tb: s.tb}
	h.port.Store(uint32(20000 + rand.IntN(20000)))
	atk, err := eth0(s.tb, "atk")
	if err != nil {
		t.Fatal(err)
	}
	sw, err := eth0(s.tb, "sw")
	if err != nil {
		t.Fatal(err)
	}
	h.ifi, h.mac, h.swMAC = atk, [6]byte(atk.HardwareAddr), [6]byte(sw.HardwareAddr)
	for i := 1; i <= s.tb.Backends; i++ {
		if _, err := s.tb.Run("be"+strconv.Itoa(i), "ip", "neigh", "replace", rawClientIP,
			"lladdr", atk.HardwareAddr.String(), "dev", "eth0", "nud", "permanent"); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// eth0 returns the eth0 interface of host.
func eth0(tb *testbed.Testbed, host string) (*net.Interface, error) {
	var ifi *net.Interface
	err := tb.Do(host, func() (err error) {
		ifi, err = net.InterfaceByName("eth0")
		return err
	})
	return ifi, err
}

// rawSeg is a segment the raw client received.
type rawSeg struct {
	seq, ack seqnum.Value
	flags    uint8
	window   uint16
	len      int // payload bytes
}

// String shows the segment as "[flags seq ack win len]", for failure messages.
func (s rawSeg) String() string {
	f := ""
	for i, name := range []string{"F", "S", "R", "P", "A"} {
		if s.flags&(1<<i) != 0 {
			f += name
		}
	}
	return fmt.Sprintf("[%s seq %d ack %d win %d len %d]", f, s.seq, s.ack, s.window, s.len)
}

// rawConn is one TCP connection of the raw client, from rawClientIP and a
// port of its own to the VIP's port 80. Its own AF_PACKET socket on the
// attacker's eth0 sends the frames the test builds and reads those of the
// connection that come back: the switch's, or a back-end's once the
// connection is handed off. It keeps a receiver's state (in-order data
// within its window, FIN, RST) and acknowledges what it receives, like a
// client's kernel; what it sends is up to the test.
type rawConn struct {
	t   *testing.T // the test the connection reports to; set it when a subtest takes the connection over
	pc  *packet.Conn
	to  net.Addr        // the switch's MAC address, where every frame goes
	seg pktrate.Segment // the next segment: Seq is snd_nxt, Ack rcv_nxt, Window the offered window
	// synOptions are the TCP options of the connection's SYNs.
	synOptions []byte
	rbuf       []byte // frames read

	synAckd bool         // a SYN-ACK acknowledged exactly the SYN
	iss     seqnum.Value // the switch's initial sequence number, once synAckd
	segs    []rawSeg     // every segment received, in order
	data    []byte       // payload received in order
	acked   seqnum.Value // the highest acknowledgment received
	finRcvd bool
	rstRcvd bool
}

// dial opens a raw connection with the next source port; nothing is sent.
// The socket is closed at the end of the test.
func (h *rawHost) dial(t *testing.T) *rawConn {
	t.Helper()
	c := &rawConn{
		t:          t,
		to:         &packet.Addr{HardwareAddr: h.swMAC[:]},
		rbuf:       make([]byte, rawFrameMax),
		synOptions: rawSYNOptions,
		seg: pktrate.Segment{
			SrcMAC: h.mac, DstMAC: h.swMAC,
			Src:     [4]byte(net.ParseIP(rawClientIP).To4()),
			Dst:     [4]byte(net.ParseIP(testbed.VIP).To4()),
			SrcPort: uint16(h.port.Add(1)), DstPort: 80,
			Seq: rand.Uint32(), Window: rawWindow,
		},
	}
	if err := h.tb.Do("atk", func() (err error) {
		c.pc, err = packet.Listen(h.ifi, packet.Raw, unix.ETH_P_IP, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.pc.Close() })
	return c
}

// frame returns a new frame of the connection with the given flags,
// sequence number and payload (the other fields from c.seg).
func (c *rawConn) frame(flags uint8, seq uint32, payload []byte) []byte {
	seg := c.seg
	seg.Flags, seg.Seq, seg.Payload = flags, seq, payload
	if flags&header.FlagSYN != 0 {
		seg.Options = c.synOptions
	}
	b := make([]byte, seg.Len())
	seg.Encode(b)
	return b
}

// write sends a frame.
func (c *rawConn) write(frame []byte) {
	c.t.Helper()
	if _, err := c.pc.WriteTo(frame, c.to); err != nil {
		c.t.Fatalf("send from %s port %d: %v", rawClientIP, c.seg.SrcPort, err)
	}
}

// send sends a segment at snd_nxt and advances snd_nxt over it.
func (c *rawConn) send(flags uint8, payload []byte) {
	c.t.Helper()
	c.write(c.frame(flags, c.seg.Seq, payload))
	c.seg.Seq += uint32(len(payload))
	if flags&(header.FlagSYN|header.FlagFIN) != 0 {
		c.seg.Seq++
	}
}

// synFrame returns the connection's SYN, at snd_nxt: the SYN-ACK that
// answers it sets synAckd and advances snd_nxt over the SYN.
func (c *rawConn) synFrame() []byte { return c.frame(header.FlagSYN, c.seg.Seq, nil) }

// connect makes the handshake: SYN, the switch's SYN-ACK, then the ACK,
// which offers window; it fails the test without a SYN-ACK.
func (c *rawConn) connect(window uint16) {
	c.t.Helper()
	c.write(c.synFrame())
	if !c.await(rawSYNWait, func() bool { return c.synAckd }) {
		c.t.Fatalf("port %d: no SYN-ACK within %v: %v", c.seg.SrcPort, rawSYNWait, c.segs)
	}
	c.seg.Window = window
	c.send(header.FlagACK, nil)
}

// await takes the connection's segments until done returns true (it is
// called after each) or d has passed, and returns done's last result. It
// reads for at least rawDrain, so that with d <= 0 it still takes the
// segments already received (a read with a deadline in the past returns at
// once, whatever is queued).
func (c *rawConn) await(d time.Duration, done func() bool) bool {
	c.t.Helper()
	deadline := time.Now().Add(max(d, rawDrain))
	for !done() {
		tcp, ok := c.read(deadline)
		if !ok {
			return done()
		}
		c.take(tcp)
	}
	return true
}

// quiet waits d and reports whether no segment came in that time.
func (c *rawConn) quiet(d time.Duration) bool {
	c.t.Helper()
	n := len(c.segs)
	c.await(d, func() bool { return len(c.segs) > n })
	return len(c.segs) == n
}

// read returns the next segment of the connection, or false at the
// deadline. The segment is valid until the next read.
func (c *rawConn) read(deadline time.Time) (header.TCP, bool) {
	c.t.Helper()
	if err := c.pc.SetReadDeadline(deadline); err != nil {
		c.t.Fatal(err)
	}
	for {
		n, _, err := c.pc.ReadFrom(c.rbuf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, false
		}
		if err != nil {
			c.t.Fatalf("port %d: read: %v", c.seg.SrcPort, err)
		}
		if tcp, ok := c.match(c.rbuf[:n]); ok {
			return tcp, true
		}
	}
}

// match returns the TCP segment of frame if it belongs to the connection:
// from the VIP's port to the client's. Checksums are not checked: a
// back-end's frames may carry partial ones (veth offloads).
func (c *rawConn) match(frame []byte) (header.TCP, bool) {
	if len(frame) < header.EthernetLen || header.Ethernet(frame).Type() != header.EtherTypeIPv4 {
		return nil, false
	}
	ip, err := header.ParseIPv4(frame[header.EthernetLen:])
	if err != nil || ip.Protocol() != header.ProtocolTCP || ip.Src() != c.seg.Dst || ip.Dst() != c.seg.Src {
		return nil, false
	}
	tcp, err := header.ParseTCP(ip.Payload())
	if err != nil || tcp.SrcPort() != c.seg.DstPort || tcp.DstPort() != c.seg.SrcPort {
		return nil, false
	}
	return tcp, true
}

// take handles a received segment as a client's kernel would: a SYN-ACK
// that acknowledges exactly the SYN gives the switch's sequence number;
// in-order data that fits the offered window is kept, a FIN after it
// noted; every segment that carries data or a FIN is acknowledged.
func (c *rawConn) take(tcp header.TCP) {
	c.t.Helper()
	flags := tcp.Flags()
	seq, ack := seqnum.Value(tcp.Seq()), seqnum.Value(tcp.Ack())
	payload := tcp.Payload()
	c.segs = append(c.segs, rawSeg{seq: seq, ack: ack, flags: flags, window: tcp.Window(), len: len(payload)})
	switch {
	case flags&header.FlagRST != 0:
		c.rstRcvd = true
		return
	case flags&header.FlagSYN != 0:
		if flags&header.FlagACK != 0 && ack == seqnum.Value(c.seg.Seq+1) {
			c.iss, c.synAckd, c.acked = seq, true, ack
			c.seg.Seq++
			c.seg.Ack = uint32(seq + 1)
		}
		return
	}
	if flags&header.FlagACK != 0 && c.acked.LessThan(ack) {
		c.acked = ack
	}
	if len(payload) == 0 && flags&header.FlagFIN == 0 {
		return
	}
	nxt := seqnum.Value(c.seg.Ack)
	if seq.LessThanEq(nxt) && nxt.LessThanEq(seq.Add(seqnum.Size(len(payload)))) && !c.finRcvd {
		p := payload[seq.Size(nxt):]
		n := min(len(p), int(c.seg.Window))
		c.data = append(c.data, p[:n]...)
		c.seg.Ack += uint32(n)
		if n == len(p) && flags&header.FlagFIN != 0 {
			c.finRcvd = true
			c.seg.Ack++
		}
	}
	c.send(header.FlagACK, nil)
}

// close closes the client's side with a FIN and waits for the peer's FIN
// (if it has not come yet) and the acknowledgment of ours.
func (c *rawConn) close() {
	c.t.Helper()
	c.send(header.FlagFIN|header.FlagACK, nil)
	fin := seqnum.Value(c.seg.Seq)
	if !c.await(rawReplyMax, func() bool { return c.finRcvd && !c.acked.LessThan(fin) }) {
		c.t.Errorf("port %d: closing: peer FIN %v, our FIN acknowledged %v; segments %v",
			c.seg.SrcPort, c.finRcvd, !c.acked.LessThan(fin), c.segs)
	}
}

// httpResponse is a complete HTTP response the raw client read.
type httpResponse struct {
	status int
	body   string
}

// responses parses the complete HTTP responses at the start of data.
func responses(data []byte) []httpResponse {
	var out []httpResponse
	r := bufio.NewReader(bytes.NewReader(data))
	for {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return out
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return out
		}
		out = append(out, httpResponse{resp.StatusCode, string(body)})
	}
}

// awaitResponses waits until n complete responses came, or the peer closed
// or reset the connection, and returns the responses.
func (c *rawConn) awaitResponses(n int) []httpResponse {
	c.t.Helper()
	c.await(rawReplyMax, func() bool { return c.finRcvd || c.rstRcvd || len(responses(c.data)) >= n })
	return responses(c.data)
}
