package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

var vip = [4]byte{198, 18, 0, 100}

// captured is a copy of a received frame.
type captured struct {
	Data   []byte
	Vnet   []byte
	Status uint32
}

// capture reads frames from r until stop accepts one (returned last) or
// timeout passes, and returns copies of them.
func capture(t *testing.T, r *Ring, timeout time.Duration, stop func(captured) bool) []captured {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var out []captured
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return out
		}
		if err := r.Wait(left); errors.Is(err, ErrTimeout) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		b, ok := r.NextBlock()
		if !ok {
			continue
		}
		var f Frame
		done := false
		for !done && b.Next(&f) {
			c := captured{Data: bytes.Clone(f.Data), Vnet: bytes.Clone(f.Vnet), Status: f.Status}
			out = append(out, c)
			done = stop(c)
		}
		if b.Corrupt() {
			t.Errorf("corrupt block from the kernel")
		}
		r.Release(b)
		if done {
			return out
		}
	}
}

// tcpTo reports whether frame d is IPv4 TCP to dst, and returns its TCP header.
func tcpTo(d []byte, dst [4]byte) ([]byte, bool) {
	if len(d) < 14+20+20 || binary.BigEndian.Uint16(d[12:]) != 0x0800 || d[14+9] != 6 || !bytes.Equal(d[14+16:14+20], dst[:]) {
		return nil, false
	}
	return d[14+int(d[14]&0xf)*4:], true
}

// forVersions runs f as one subtest per ring version, V3 then V2.
func forVersions(t *testing.T, f func(t *testing.T, version int)) {
	for _, v := range []int{3, 2} {
		t.Run(fmt.Sprintf("V%d", v), func(t *testing.T) { f(t, v) })
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{name: "no interface", cfg: Config{}, want: ErrBadConfig},
		{name: "block size not a power of two", cfg: Config{Interface: "lo", Version: 3, BlockSize: 3 << 12}, want: ErrBadConfig},
		{name: "block size below a page", cfg: Config{Interface: "lo", Version: 3, BlockSize: 1024}, want: ErrBadConfig},
		{name: "frame size not aligned", cfg: Config{Interface: "lo", FrameSize: 1000}, want: ErrBadConfig},
		{name: "negative blocks", cfg: Config{Interface: "lo", NumBlocks: -1}, want: ErrBadConfig},
		{name: "empty filter", cfg: Config{Interface: "lo", Filter: []SockFilter{}}, want: ErrBadConfig},
		{name: "unknown version", cfg: Config{Interface: "lo", Version: 1}, want: ErrBadConfig},
		{name: "V2 frame size not aligned", cfg: Config{Interface: "lo", Version: 2, FrameSize: 65000}, want: ErrBadConfig},
		{name: "V2 negative slots", cfg: Config{Interface: "lo", Version: 2, NumBlocks: -1}, want: ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Open(tt.cfg)
			if err == nil {
				r.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Open(Config{Interface: "no-such-if0"}); err == nil || !strings.Contains(err.Error(), "ring: interface") {
		t.Errorf("Open(missing interface) = %v", err)
	}
}

// TestReceiveFiltered checks that only TCP frames to the filter's address
// reach the ring, that a SYN arrives intact, and that Stats accumulates.
func TestReceiveFiltered(t *testing.T) {
	requireRoot(t)
	forVersions(t, testReceiveFiltered)
}

func testReceiveFiltered(t *testing.T, version int) {
	l := newLAN(t, 1, 2)
	r := openIn(t, l.hostNS(2), Config{Version: version, BlockSize: 64 << 10, NumBlocks: 4, FanoutGroup: 7, Filter: FilterTCPToAddr(vip)})
	if got := r.HardwareAddr().String(); got != mac(2).String() {
		t.Errorf("HardwareAddr = %s, want %s", got, mac(2))
	}
	if r.Ifindex() <= 0 {
		t.Errorf("Ifindex = %d", r.Ifindex())
	}
	if err := r.Wait(20 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("Wait on an idle ring = %v, want ErrTimeout", err)
	}
	ip(t, "-n", l.hostNS(1), "neigh", "add", "198.18.0.100", "lladdr", mac(2).String(), "dev", "eth0", "nud", "permanent")
	mustInNetns(t, l.hostNS(1), func() {
		// Filtered out: UDP to the address, TCP to host 2's own address.
		u, err := net.Dial("udp", "198.18.0.100:80")
		if err != nil {
			t.Fatal(err)
		}
		u.Write([]byte("not tcp"))
		u.Close()
		if c, err := net.DialTimeout("tcp", "198.18.0.2:9", time.Second); err == nil {
			c.Close()
		}
	})
	// Accepted: a SYN to the address (nobody answers it).
	goInNetns(t, l.hostNS(1), func() { net.DialTimeout("tcp", "198.18.0.100:80", 300*time.Millisecond) })
	frames := capture(t, r, 2*time.Second, func(c captured) bool { return true })
	if len(frames) != 1 {
		t.Fatalf("got %d frames, want the SYN only", len(frames))
	}
	d := frames[0].Data
	tcp, ok := tcpTo(d, vip)
	if !ok {
		t.Fatalf("frame is not TCP to %v: % x", vip, d)
	}
	got := []string{net.HardwareAddr(d[0:6]).String(), net.HardwareAddr(d[6:12]).String(), net.IP(d[14+12 : 14+16]).String(),
		strconv.Itoa(int(binary.BigEndian.Uint16(tcp[2:]))), strconv.Itoa(int(tcp[13]))}
	want := []string{mac(2).String(), mac(1).String(), "198.18.0.1", "80", "2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SYN (dst MAC, src MAC, src IP, dst port, flags) (-want +got):\n%s", diff)
	}
	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets < 1 || st.Drops != 0 || st.Corrupt != 0 || st.Truncated != 0 {
		t.Errorf("Stats = %+v, want Packets >= 1, no drops, nothing corrupt or truncated", st)
	}
	// The kernel resets its counters on read; the ring keeps the totals.
	if again, err := r.Stats(); err != nil || again.Packets < st.Packets {
		t.Errorf("second Stats = %+v, %v; want totals >= %+v", again, err, st)
	}
}

// TestFanout checks that two rings in one fanout group share the frames and
// that each flow stays on one ring.
func TestFanout(t *testing.T) {
	requireRoot(t)
	forVersions(t, testFanout)
}

func testFanout(t *testing.T, version int) {
	l := newLAN(t, 1, 2)
	host2 := [4]byte{198, 18, 0, 2}
	// Every frame reaches the rings before they are read, so each needs a
	// place of its own: a slot (V2), or a block (V3: the kernel retires a
	// block on its timeout, and on a slow machine that may be after one frame).
	cfg := Config{Version: version, BlockSize: 64 << 10, NumBlocks: 64, FanoutGroup: 42, Filter: FilterTCPToAddr(host2)}
	if version == 2 {
		cfg.FrameSize = 2048
	}
	rings := []*Ring{openIn(t, l.hostNS(2), cfg), openIn(t, l.hostNS(2), cfg)}
	var ln net.Listener
	mustInNetns(t, l.hostNS(2), func() {
		var err error
		if ln, err = net.Listen("tcp", "198.18.0.2:8080"); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	const flows = 8
	mustInNetns(t, l.hostNS(1), func() {
		for range flows { // each: SYN, ACK, data, FIN, ACK at least
			c, err := net.Dial("tcp", "198.18.0.2:8080")
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("hello"))
			c.Close()
		}
	})
	ringOf := map[uint16]int{} // source port -> ring
	total := 0
	// Read both rings in turns until every flow showed up (a loaded machine
	// may retire a block late), for at most 3 s.
	for deadline := time.Now().Add(3 * time.Second); (len(ringOf) < flows || total < 4*flows) && time.Now().Before(deadline); {
		for i, r := range rings {
			for _, c := range capture(t, r, 50*time.Millisecond, func(captured) bool { return false }) {
				tcp, ok := tcpTo(c.Data, host2)
				if !ok {
					t.Fatalf("unexpected frame % x", c.Data)
				}
				port := binary.BigEndian.Uint16(tcp)
				if prev, seen := ringOf[port]; seen && prev != i {
					t.Errorf("flow from port %d seen on rings %d and %d", port, prev, i)
				}
				ringOf[port] = i
				total++
			}
		}
	}
	if len(ringOf) != flows || total < 4*flows {
		t.Errorf("saw %d flows in %d frames, want %d flows of 4 frames or more", len(ringOf), total, flows)
		for i, r := range rings {
			st, err := r.Stats()
			t.Logf("ring %d: %+v %v", i, st, err) // kernel drops tell a full ring from lost frames
		}
	}
	t.Logf("%d frames; ring of each flow: %v", total, ringOf)
}

// tcpFrame builds an Ethernet/IPv4/TCP frame from host 2 to host 1 (the
// transport checksum is left zero: the frame is only captured).
func tcpFrame(buf []byte, payload string) []byte {
	f := buf[:14+20+20+len(payload)]
	copy(f[0:6], mac(1))
	copy(f[6:12], mac(2))
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
	copy(ip[12:16], vip[:])
	copy(ip[16:20], []byte{198, 18, 0, 1})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum+sum>>16))
	tcp := f[34:54]
	binary.BigEndian.PutUint16(tcp[0:], 80)
	binary.BigEndian.PutUint16(tcp[2:], 40000)
	tcp[12], tcp[13] = 5<<4, 0x18
	copy(f[54:], payload)
	return f
}

// TestSender checks that batched frames leave byte-exact, that an oversized
// frame is counted and skipped, and that the send path does not allocate.
func TestSender(t *testing.T) {
	requireRoot(t)
	forVersions(t, testSender)
}

func testSender(t *testing.T, version int) {
	l := newLAN(t, 1, 2)
	tx := openIn(t, l.hostNS(2), Config{Version: version, BlockSize: 64 << 10, NumBlocks: 2, QdiscBypass: true, Filter: FilterTCPToAddr(vip)})
	rx := openIn(t, l.hostNS(1), Config{Version: version, BlockSize: 256 << 10, NumBlocks: 4, Filter: FilterTCPToAddr([4]byte{198, 18, 0, 1})})

	s := tx.NewSender(4)
	first := tcpFrame(s.Buffer(200), "built in the sender's arena")
	s.Add(first)
	s.Add(make([]byte, 3000)) // larger than the MTU: EMSGSIZE
	own := tcpFrame(make([]byte, 200), "the caller's own memory")
	s.Add(own)
	sent, err := s.Flush()
	if sent != 2 || !errors.Is(err, unix.EMSGSIZE) {
		t.Errorf("Flush = %d, %v; want 2, EMSGSIZE", sent, err)
	}
	if diff := cmp.Diff(SenderStats{Sent: 2, Calls: 3, MsgSize: 1}, s.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	var got [][]byte
	n := 0
	for _, c := range capture(t, rx, 2*time.Second, func(captured) bool { n++; return n == 2 }) {
		got = append(got, c.Data)
	}
	// The first frame's arena memory is reused by now: compare with a rebuild.
	want := [][]byte{tcpFrame(make([]byte, 200), "built in the sender's arena"), own}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("captured frames (-want +got):\n%s", diff)
	}

	allocs := testing.AllocsPerRun(50, func() {
		s.Add(tcpFrame(s.Buffer(100), "x"))
		s.Add(own)
		if _, err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Buffer+Add+Flush allocates %v times, want 0", allocs)
	}
}

// snmp returns the Tcp counters of namespace ns from /proc/net/snmp.
func snmp(t *testing.T, ns string) map[string]int64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	m := map[string]int64{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = fields[1:]
			continue
		}
		for i, v := range fields[1:] {
			m[names[i]], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return m
}

// TestVnetForward runs the switch's data path in miniature: host 1 uploads
// to the VIP through host 2, whose ring (with vnet headers) forwards every
// frame, unchanged but for the MAC addresses, to host 3, which owns the VIP
// on lo and answers host 1 directly. It checks that the ring sees TCP GSO
// super-frames with partial checksums and that host 3's kernel accepts
// everything the kernel resegments and checksums on the way out, both with
// the switch port's offloads on (the veth default) and with its transmit
// checksum offload off (software checksums and segmentation on the switch).
func TestVnetForward(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		ethtool []string // applied to the switch's eth0
	}{
		{name: "offloads on"},
		{name: "tx checksum off", ethtool: []string{"-K", "eth0", "tx", "off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forVersions(t, func(t *testing.T, version int) { testVnetForward(t, version, tt.ethtool) })
		})
	}
}

func testVnetForward(t *testing.T, version int, ethtool []string) {
	const size = 4 << 20
	l := newLAN(t, 1, 2, 3)
	cli, sw, be := l.hostNS(1), l.hostNS(2), l.hostNS(3)
	ip(t, "-n", cli, "neigh", "add", "198.18.0.100", "lladdr", mac(2).String(), "dev", "eth0", "nud", "permanent")
	ip(t, "-n", be, "addr", "add", "198.18.0.100/32", "dev", "lo")
	if ethtool != nil {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", sw, "ethtool"}, ethtool...)...).CombinedOutput(); err != nil {
			t.Fatalf("ethtool: %v\n%s", err, out)
		}
	}
	cfg := Config{Version: version, BlockSize: 256 << 10, NumBlocks: 8, FanoutGroup: 9, Filter: FilterTCPToAddr(vip), VnetHdr: true}
	if version == 2 {
		cfg.NumBlocks = 64 // a slot per frame: 16 slots drop some frames of this upload
	}
	r := openIn(t, sw, cfg)

	// The switch: forward every frame to host 3.
	type seen struct {
		gso, partial bool
		maxLen       int
		gsoHdr       []byte
		csumHdr      []byte
	}
	var got seen
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sstats SenderStats
	wg.Go(func() {
		s := r.NewSender(64)
		defer func() { sstats = s.Stats() }()
		var f Frame
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.Wait(20 * time.Millisecond); err != nil {
				continue
			}
			b, ok := r.NextBlock()
			if !ok {
				continue
			}
			for b.Next(&f) {
				h := VnetHeader(f.Vnet)
				if h.GSOType()&^VnetGSOECN == VnetGSOTCPv4 && !got.gso {
					got.gso, got.gsoHdr = true, bytes.Clone(f.Vnet)
					got.gsoHdr = append(got.gsoHdr, byte(f.Status>>8&1)) // StatusGSOTCP
				}
				if h.Flags()&VnetFlagNeedsCsum != 0 && !got.partial {
					got.partial, got.csumHdr = true, bytes.Clone(f.Vnet)
					got.csumHdr = append(got.csumHdr, byte(f.Status>>3&1)) // StatusCsumNotReady
				}
				got.maxLen = max(got.maxLen, len(f.Data))
				copy(f.Data[0:6], mac(3))
				copy(f.Data[6:12], r.HardwareAddr())
				s.Add(f.Raw)
			}
			s.Flush()
			r.Release(b)
		}
	})
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()

	// The back-end: read everything, check it, answer.
	var ln net.Listener
	mustInNetns(t, be, func() {
		var err error
		if ln, err = net.Listen("tcp", "198.18.0.100:8080"); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7 / 5)
	}
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		in, err := io.ReadAll(c)
		if err == nil && !bytes.Equal(in, payload) {
			err = errors.New("back-end received different bytes")
		}
		if err == nil {
			_, err = c.Write([]byte("ok"))
		}
		srvErr <- err
	}()

	// The client: upload through the switch.
	var c net.Conn
	mustInNetns(t, cli, func() {
		var err error
		if c, err = net.DialTimeout("tcp", "198.18.0.100:8080", 3*time.Second); err != nil {
			t.Fatalf("dial through the switch: %v", err)
		}
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("upload: %v", err)
	}
	c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil || string(reply) != "ok" {
		t.Fatalf("reply %q, %v", reply, err)
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	halt()

	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ring stats %+v", st)
	if st.Truncated != 0 || st.Corrupt != 0 {
		t.Errorf("ring stats %+v, want no truncated frame and no corrupt block", st)
	}
	if errs := snmp(t, be)["InCsumErrors"]; errs != 0 {
		t.Errorf("back-end TcpInCsumErrors = %d, want 0", errs)
	}
	if sstats.Sent == 0 || sstats.MsgSize+sstats.Other+sstats.Again+sstats.NoBufs != 0 {
		t.Errorf("sender stats %+v, want sends and no failures", sstats)
	}
	if !got.gso || got.maxLen <= 1514 {
		t.Fatalf("no TCP GSO super-frame seen (largest frame %d bytes)", got.maxLen)
	}
	if !got.partial {
		t.Fatalf("no frame with a partial checksum seen")
	}
	gh, ch := VnetHeader(got.gsoHdr), VnetHeader(got.csumHdr)
	t.Logf("GSO vnet header % x, partial-checksum vnet header % x, largest frame %d", got.gsoHdr[:10], got.csumHdr[:10], got.maxLen)
	if gh.GSOSize() == 0 || gh.GSOSize() > 1500 || got.gsoHdr[10] != 1 {
		t.Errorf("GSO frame: gso_size %d, StatusGSOTCP %d; want a segment size and the status bit", gh.GSOSize(), got.gsoHdr[10])
	}
	if ch.CsumStart() != 14+20 || ch.CsumOffset() != 16 || got.csumHdr[10] != 1 {
		t.Errorf("partial checksum: csum_start %d, csum_offset %d, StatusCsumNotReady %d; want 34, 16, 1", ch.CsumStart(), ch.CsumOffset(), got.csumHdr[10])
	}
}

// TestClose checks that Close gives back the descriptor and the mapping.
func TestClose(t *testing.T) {
	requireRoot(t)
	forVersions(t, testClose)
}

func testClose(t *testing.T, version int) {
	l := newLAN(t, 1)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	// mapped reports whether a mapping of the process starts at addr (the
	// count of mappings is no measure: the Go runtime maps memory of its
	// own at any time).
	mapped := func(addr uintptr) bool {
		b, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains("\n"+string(b), fmt.Sprintf("\n%x-", addr))
	}
	beforeFds := fds()
	var r *Ring
	var err error
	mustInNetns(t, l.hostNS(1), func() { r, err = Open(Config{Interface: "eth0", Version: version, BlockSize: 64 << 10, NumBlocks: 2}) })
	if err != nil {
		t.Fatal(err)
	}
	if fds() != beforeFds+1 {
		t.Errorf("open ring: %d descriptors, want %d", fds(), beforeFds+1)
	}
	addr := uintptr(unsafe.Pointer(&r.mem[0]))
	if !mapped(addr) {
		t.Fatalf("open ring: no mapping at %x", addr)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fds(); got != beforeFds {
		t.Errorf("after Close: %d descriptors, want %d", got, beforeFds)
	}
	if mapped(addr) {
		t.Errorf("after Close: the ring's mapping at %x is still there", addr)
	}
	if err := r.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, err := r.Stats(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close = %v, want ErrClosed", err)
	}
	if _, ok := r.NextBlock(); ok {
		t.Errorf("NextBlock after Close returned a block")
	}
	if err := r.Wait(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait after Close = %v, want ErrClosed", err)
	}
}

// TestSuperFrame has host 1 send host 2 a UDP GSO super-frame of 64 KiB, the
// largest a veth passes unsegmented (its skb, MAC header included, must stay
// below gso_max_size, 65536; a sender's TCP super-frames stop a little short
// of it), and checks that a ring with the default geometry of either version
// returns it whole, with its virtio-net header, and that a ring too small for
// it counts it as truncated and never returns it. (TestV2FrameSize checks the
// V2 default against the largest frame a NIC's GRO can make, 14 bytes more.)
func TestSuperFrame(t *testing.T) {
	requireRoot(t)
	l := newLAN(t, 1, 2)
	var sink net.PacketConn // host 2 takes the datagram: no ICMP back
	mustInNetns(t, l.hostNS(2), func() {
		var err error
		if sink, err = net.ListenPacket("udp", "198.18.0.2:9"); err != nil {
			t.Fatal(err)
		}
	})
	defer sink.Close()
	var conn net.Conn
	mustInNetns(t, l.hostNS(1), func() {
		var err error
		if conn, err = net.Dial("udp", "198.18.0.2:9"); err != nil {
			t.Fatal(err)
		}
	})
	defer conn.Close()
	const segment = 1472
	rc, err := conn.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if cerr := rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, segment) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("setsockopt UDP_SEGMENT: %v", err)
	}
	const frameLen = 0xffff
	payload := bytes.Repeat([]byte("super-frame "), frameLen)[:frameLen-14-20-8]

	tests := []struct {
		name  string
		cfg   Config
		whole bool
	}{
		{name: "V3 default", cfg: Config{Version: 3}, whole: true},
		{name: "V2 default", cfg: Config{}, whole: true},
		{name: "V3 64 KiB blocks", cfg: Config{Version: 3, BlockSize: 64 << 10}},
		{name: "V2 2 KiB frames", cfg: Config{Version: 2, FrameSize: 2048}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.VnetHdr = true
			r := openIn(t, l.hostNS(2), cfg)
			if _, err := conn.Write(payload); err != nil {
				t.Fatal(err)
			}
			// The ring also sees the bridge's IGMP: keep UDP frames.
			isUDP := func(c captured) bool { return len(c.Data) > 14+20 && c.Data[14+9] == 17 }
			got := slices.DeleteFunc(capture(t, r, 300*time.Millisecond, isUDP), func(c captured) bool { return !isUDP(c) })
			st, err := r.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if !tt.whole {
				if len(got) != 0 || st.Truncated != 1 {
					t.Errorf("got %d frames, stats %+v; want none, 1 truncated", len(got), st)
				}
				return
			}
			if len(got) != 1 || st.Truncated != 0 {
				t.Fatalf("got %d frames, stats %+v; want the super-frame", len(got), st)
			}
			d := got[0].Data
			if len(d) != frameLen || !bytes.Equal(d[14+20+8:], payload) {
				t.Errorf("frame of %d bytes, want %d ending with the payload", len(d), frameLen)
			}
			if h := VnetHeader(got[0].Vnet); h.GSOSize() != segment {
				t.Errorf("vnet header % x, want gso_size %d", got[0].Vnet, segment)
			}
		})
	}
}

// TestWakeupDelay logs the median time from sending a lone frame into a
// namespace until NextBlock returns it, for both ring versions with the
// default BlockTimeout: the latency the ring adds to a frame nothing follows.
func TestWakeupDelay(t *testing.T) {
	requireRoot(t)
	forVersions(t, func(t *testing.T, version int) {
		l := newLAN(t, 1, 2)
		// Host 2 only sends: its ring lets nothing in.
		s := openIn(t, l.hostNS(2), Config{Version: 3, BlockSize: 64 << 10, NumBlocks: 1, Filter: FilterTCPToAddr(vip)}).NewSender(4)
		r := openIn(t, l.hostNS(1), Config{Version: version, Filter: FilterTCPToAddr([4]byte{198, 18, 0, 1})})
		frame := tcpFrame(make([]byte, 100), "ping")
		const n = 200
		delays := make([]time.Duration, 0, n)
		var f Frame
		for range n {
			start := time.Now()
			s.Add(frame)
			if _, err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			for got := 0; got == 0; {
				if err := r.Wait(time.Second); err != nil {
					t.Fatalf("frame %d: %v", len(delays), err)
				}
				if b, ok := r.NextBlock(); ok {
					for b.Next(&f) {
						got++
					}
					r.Release(b)
				}
			}
			delays = append(delays, time.Since(start))
		}
		slices.Sort(delays)
		t.Logf("TPACKET_V%d: send to NextBlock, %d lone frames: median %v, p90 %v, max %v",
			version, n, delays[n/2], delays[n*9/10], delays[n-1])
	})
}
