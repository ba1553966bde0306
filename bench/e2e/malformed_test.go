package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"webswitch/l7"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

// The switch's configuration for TestMalformed: short timeouts, so that
// every flow ends soon, and a small request head limit.
const (
	malformedKeys = `request_timeout = "2s"
linger = "1s"
idle_timeout = "3s"
max_request_head = 2048
`
	// malformedFlowsGone bounds the wait for the flow table to empty
	// after the traffic: linger, request_timeout and some margin.
	malformedFlowsGone = 5 * time.Second
	// rawQuiet is how long a frame that must get no answer is watched.
	rawQuiet = 300 * time.Millisecond
	// zeroWindowFirstProbe is less than the switch's first retransmission
	// timeout (300 ms): before it, a zero window gets nothing at all.
	zeroWindowFirstProbe = 200 * time.Millisecond
	// zeroWindowProbes is how many probes the zero-window client waits
	// for before it opens its window (the first two come 300 ms and 900 ms
	// after the request). A window that never opens is tcpfsm's
	// TestZeroWindowForever: here the switch would take about 29 s to give
	// up.
	zeroWindowProbes = 2
	// zeroWindowWait bounds the wait for those probes.
	zeroWindowWait = 3 * time.Second
	malformedPage  = 256 << 10
	// realClientPause spaces the real client's fetches during the traffic
	// (a curl process each, on a machine of 2 cores).
	realClientPause = 50 * time.Millisecond
)

// Requests of the raw client.
const (
	rawHello      = "GET /hello HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: raw\r\n\r\n"
	rawBadMethod  = "G(T /hello HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
	rawOversize   = 3000 // bytes of padding header: more than max_request_head
	rawChunk      = 1400 // payload bytes per segment of a long head
	routerAlertIP = "\x94\x04\x00\x00"
)

// TestMalformed sends the switch each kind of malformed traffic the issue
// lists. From the attacker host, a raw client (rawConn) sends each kind of bad traffic to
// the VIP; for each, the test checks on the wire that it is handled
// (dropped without an answer, reset, answered with the switch's own HTTP
// error, or handed off and served right) and, from the switch's counters
// before and after, that it is counted by its kind: every drop and HTTP
// error counter changes by exactly what the kind should cause. A client
// that completes its handshake with a zero window and sends a bad request
// runs meanwhile: the switch may only probe it, one byte at a time, until
// it opens its window. curl fetches pages from the client host during and after
// the traffic, byte-exact. At the end the switch is alive and its flow
// table empty.
func TestMalformed(t *testing.T) {
	needRoot(t, "ip", "curl")
	www := t.TempDir()
	randomFile(t, filepath.Join(www, "static", "page.bin"), malformedPage)
	page, err := os.ReadFile(filepath.Join(www, "static", "page.bin"))
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string][]byte{vipURL + "/static/page.bin": page, vipURL + "/hello": []byte(helloBody)}
	cfg := siteConfig(t, true, www)
	cfg.SwitchKeys = malformedKeys
	s := startSiteConfig(t, cfg)
	h := newRawHost(t, s)

	t.Run("traffic", func(t *testing.T) {
		// The kinds' counters must not see the zero-window client's 400:
		// they start once it is counted.
		zeroStarted := make(chan struct{})
		markStarted := sync.OnceFunc(func() { close(zeroStarted) })
		stop := make(chan struct{})
		var running sync.WaitGroup
		running.Add(2)
		go func() {
			running.Wait()
			close(stop)
		}()
		t.Run("zero window", func(t *testing.T) {
			t.Parallel()
			defer running.Done()
			defer markStarted()
			zeroWindow(t, s, h, markStarted)
		})
		t.Run("kinds", func(t *testing.T) {
			t.Parallel()
			defer running.Done()
			<-zeroStarted
			for _, k := range malformedKinds() {
				runKind(t, s, h, k)
			}
		})
		t.Run("real client during", func(t *testing.T) {
			t.Parallel()
			n := 0
			for {
				select {
				case <-stop:
					if n == 0 {
						t.Error("no fetch completed during the traffic")
					}
					t.Logf("real client: %d byte-exact fetches during the traffic", n)
					return
				case <-time.After(realClientPause):
				}
				n += fetchPages(t, s, pages)
			}
		})
	})

	t.Run("real client after", func(t *testing.T) {
		fetchPages(t, s, pages)
	})
	t.Run("no flow left", func(t *testing.T) {
		start := time.Now()
		for {
			c := totals(t, s)
			if c["active_flows"] == 0 && c["spliced_flows"] == 0 {
				t.Logf("flow table empty %.1f s after the traffic", time.Since(start).Seconds())
				break
			}
			if time.Since(start) > malformedFlowsGone {
				t.Fatalf("%v active flows (%v spliced) %v after the traffic", c["active_flows"], c["spliced_flows"], malformedFlowsGone)
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
	select {
	case <-s.Switch.Done():
		t.Errorf("the switch exited: %v", s.Switch.Wait())
	default:
	}
}

// fetchPages fetches each page with curl from the client host, checks that
// it is byte-exact and returns how many were.
func fetchPages(t *testing.T, s *site, pages map[string][]byte) (ok int) {
	t.Helper()
	for url, want := range pages {
		got, err := s.tb.Command("cli", "curl", "-sS", "-m", "10", url).Output()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("curl %s: %d bytes, %v; want the %d bytes of the page", url, len(got), err, len(want))
			continue
		}
		ok++
	}
	return ok
}

// totals returns the switch's counters summed over its shards: the plain
// counters by name, the drops as "drops.KIND" and the switch's own HTTP
// responses as "http_errors.STATUS".
func totals(t *testing.T, s *site) map[string]float64 {
	t.Helper()
	shards, err := s.ShardCounters()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, c := range shards {
		for k, v := range c {
			switch v := v.(type) {
			case float64:
				out[k] += v
			case map[string]any:
				for kk, vv := range v {
					n, _ := vv.(float64)
					out[k+"."+kk] += n
				}
			}
		}
	}
	return out
}

// switchSNMP returns the switch host's kernel counters (/proc/net/snmp and
// netstat), or nil when no names are wanted.
func switchSNMP(t *testing.T, s *site, names []string) map[string]uint64 {
	t.Helper()
	if len(names) == 0 {
		return nil
	}
	m, err := s.tb.SNMP("sw")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// exact reports whether a counter must change by exactly what a kind
// expects (0 if it expects nothing): the drops and the switch's HTTP
// errors, which only the raw client's traffic moves (curl's connections
// are well-formed on a lossless LAN). Other counters also count curl's
// connections: a kind only sets a minimum for them.
func exact(key string) bool {
	return strings.HasPrefix(key, "drops.") || strings.HasPrefix(key, "http_errors.")
}

// checkCounted compares the change of the counters from before to after
// with want (see exact) and returns the changes of want's counters.
func checkCounted(t *testing.T, before, after, want map[string]float64) string {
	t.Helper()
	keys := map[string]bool{}
	for _, m := range []map[string]float64{before, after, want} {
		for k := range m {
			keys[k] = keys[k] || exact(k) || want[k] != 0
		}
	}
	var got []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !keys[k] {
			continue
		}
		d := after[k] - before[k]
		switch {
		case exact(k) && want[k] != 0:
			got = append(got, fmt.Sprintf("%s +%v", k, d))
		case want[k] != 0:
			got = append(got, fmt.Sprintf("%s +%v (curl's included)", k, d))
		}
		switch {
		case exact(k) && d != want[k]:
			t.Errorf("%s changed by %v, want %v", k, d, want[k])
		case !exact(k) && d < want[k]:
			t.Errorf("%s changed by %v, want at least %v", k, d, want[k])
		}
	}
	return strings.Join(got, ", ")
}

// malformedKind is one kind of bad traffic.
type malformedKind struct {
	name string
	// run sends the kind's traffic from the raw client and checks the
	// answers; it returns how many frames or connections it sent and
	// what came of them.
	run func(t *testing.T, h *rawHost) (sent int, outcome string)
	// want are the changes of the switch's counters the traffic must
	// cause: exactly for drops and HTTP errors (every other one must not
	// change), at least for the others.
	want map[string]float64
	// kernel names counters of the switch host's kernel (/proc/net/snmp)
	// whose changes the kind's log line shows.
	kernel []string
}

// runKind runs one kind as a subtest with two parts: "handled" (the
// answers on the wire) and "counted" (the counters), and logs a line of
// figures.
func runKind(t *testing.T, s *site, h *rawHost, k malformedKind) {
	t.Run(k.name, func(t *testing.T) {
		before, kernel := totals(t, s), switchSNMP(t, s, k.kernel)
		var sent int
		var outcome string
		t.Run("handled", func(t *testing.T) { sent, outcome = k.run(t, h) })
		after, kernelAfter := totals(t, s), switchSNMP(t, s, k.kernel)
		var counted string
		t.Run("counted", func(t *testing.T) { counted = checkCounted(t, before, after, k.want) })
		for _, name := range k.kernel {
			counted += fmt.Sprintf(" (switch kernel %s +%d)", name, kernelAfter[name]-kernel[name])
		}
		t.Logf("%s: sent %d; counted %s; outcome: %s", k.name, sent, counted, outcome)
	})
}

// badFrame is a frame the raw client sends on a connection of its own, and
// the answer it must get.
type badFrame struct {
	name  string
	build func(c *rawConn) [][]byte // the frames, sent in order
	// answer holds the flags of the answer: 0 for none; SYN|ACK for a
	// SYN-ACK, which must acknowledge exactly the SYN (not its data).
	answer uint8
}

// frames returns the run function of a kind made of badFrames, each on a
// connection of its own: all are sent, then each answer is checked.
func frames(fs ...badFrame) func(t *testing.T, h *rawHost) (int, string) {
	return func(t *testing.T, h *rawHost) (int, string) {
		conns := make([]*rawConn, len(fs))
		sentAt := make([]int, len(fs))
		sent := 0
		for i, f := range fs {
			c := h.dial(t)
			bs := f.build(c)
			conns[i], sentAt[i] = c, len(c.segs)
			for _, b := range bs {
				c.write(b)
			}
			sent += len(bs)
		}
		quietEnd := time.Now().Add(rawQuiet)
		var outcomes []string
		for i, f := range fs {
			c := conns[i]
			answered := func() bool { return len(c.segs) > sentAt[i] }
			if f.answer == 0 {
				c.await(time.Until(quietEnd), answered)
			} else {
				c.await(rawReplyMax, answered)
			}
			got := c.segs[sentAt[i]:]
			outcome := answerName(got, c.synAckd)
			if want := answerNames[f.answer]; outcome != want {
				t.Errorf("%s: answered %s, want %s", f.name, outcome, want)
			}
			outcomes = append(outcomes, f.name+": "+outcome)
		}
		return sent, strings.Join(outcomes, "; ")
	}
}

// answerNames name the answers a badFrame may expect.
var answerNames = map[uint8]string{
	0:                               "no answer",
	header.FlagRST:                  "RST",
	header.FlagSYN | header.FlagACK: "SYN-ACK of the SYN alone",
}

// answerName names the answer made of the segments got; synAckd tells
// whether a SYN-ACK acknowledged exactly the SYN.
func answerName(got []rawSeg, synAckd bool) string {
	switch {
	case len(got) == 0:
		return answerNames[0]
	case got[0].flags&header.FlagRST != 0:
		return answerNames[header.FlagRST]
	case got[0].flags == header.FlagSYN|header.FlagACK && synAckd:
		return answerNames[header.FlagSYN|header.FlagACK]
	}
	return fmt.Sprint(got)
}

// A frame's IPv4 and TCP headers.
func ipOf(frame []byte) []byte  { return frame[header.EthernetLen:] }
func tcpOf(frame []byte) []byte { ip := ipOf(frame); return ip[int(ip[0]&0xF)*4:] }

// mutated returns the connection's SYN changed by f.
func mutated(f func(b []byte) []byte) func(c *rawConn) [][]byte {
	return func(c *rawConn) [][]byte { return [][]byte{f(c.synFrame())} }
}

// withIPField returns the connection's SYN with the 16-bit IPv4 header
// field at off set to v and the header checksum fixed.
func withIPField(off int, v func(b []byte) uint16) func(c *rawConn) [][]byte {
	return mutated(func(b []byte) []byte {
		binary.BigEndian.PutUint16(ipOf(b)[off:], v(b))
		header.IPv4(ipOf(b)).SetChecksum()
		return b
	})
}

// withTCPOptions returns the connection's SYN with the given TCP options.
func withTCPOptions(opts ...byte) func(c *rawConn) [][]byte {
	return func(c *rawConn) [][]byte {
		c.synOptions = opts
		return [][]byte{c.synFrame()}
	}
}

// fragmented returns the connection's SYN (24 bytes of TCP header) as
// two IPv4 fragments: its first 16 bytes (MF), then the rest at offset 16.
func fragmented(c *rawConn) [][]byte {
	whole := c.synFrame()
	ip := ipOf(whole)
	binary.BigEndian.PutUint16(ip[ipID:], c.seg.SrcPort) // the pair's identification
	tcp := ip[header.IPv4MinLen:]
	var out [][]byte
	for _, p := range []struct {
		from, to int
		field    uint16
	}{{0, 16, ipFlagMF}, {16, len(tcp), 16 / 8}} {
		f := append(slices.Clone(whole[:header.EthernetLen+header.IPv4MinLen]), tcp[p.from:p.to]...)
		binary.BigEndian.PutUint16(ipOf(f)[ipTotalLen:], uint16(header.IPv4MinLen+p.to-p.from))
		binary.BigEndian.PutUint16(ipOf(f)[ipFragment:], p.field)
		header.IPv4(ipOf(f)).SetChecksum()
		out = append(out, f)
	}
	return out
}

// IPv4 header offsets of the fields the kinds change.
const (
	ipTotalLen = 2
	ipID       = 4
	ipFragment = 6 // flags and fragment offset
	ipFlagMF   = 0x2000
	fragOffset = 1480 / 8 // the second fragment of a 1500-byte packet
)

// constant returns a withIPField value function that returns v.
func constant(v uint16) func([]byte) uint16 { return func([]byte) uint16 { return v } }

// malformedKinds returns the kinds of the issue, all but the zero window
// (see zeroWindow).
func malformedKinds() []malformedKind {
	syn := uint8(header.FlagSYN | header.FlagACK)
	return []malformedKind{
		{
			name: "bad IP checksum",
			run: frames(badFrame{name: "SYN", build: mutated(func(b []byte) []byte {
				ipOf(b)[10] ^= 0x5a
				return b
			})}),
			want: map[string]float64{"drops.ip_checksum": 1},
		},
		{
			name: "bad TCP checksum",
			run: frames(badFrame{name: "SYN", build: mutated(func(b []byte) []byte {
				tcpOf(b)[16] ^= 0x5a
				return b
			})}),
			want: map[string]float64{"drops.tcp_checksum": 1},
		},
		{
			name: "truncated headers",
			run: frames(
				badFrame{name: "IPv4 header length past the frame", build: mutated(func(b []byte) []byte {
					ipOf(b)[0] = 0x4f // 60 bytes
					return b
				})},
				badFrame{name: "frame ends 10 bytes into the TCP header", build: mutated(func(b []byte) []byte {
					b = b[:header.EthernetLen+header.IPv4MinLen+10]
					binary.BigEndian.PutUint16(ipOf(b)[ipTotalLen:], header.IPv4MinLen+10)
					header.IPv4(ipOf(b)).SetChecksum()
					return b
				})},
				badFrame{name: "TCP data offset past the segment", build: mutated(func(b []byte) []byte {
					tcpOf(b)[12] = 15 << 4 // 60 bytes
					c := header.TCP(tcpOf(b))
					ip := header.IPv4(ipOf(b))
					c.SetChecksum(ip.Src(), ip.Dst())
					return b
				})},
			),
			want: map[string]float64{"drops.ip_header": 1, "drops.tcp_header": 2},
		},
		{
			name: "bad IPv4 total length",
			run: frames(
				badFrame{name: "larger than the frame", build: withIPField(ipTotalLen, func(b []byte) uint16 { return uint16(len(ipOf(b)) + 100) })},
				badFrame{name: "smaller than the IPv4 header", build: withIPField(ipTotalLen, constant(header.IPv4MinLen-4))},
				badFrame{name: "ends inside the TCP header", build: withIPField(ipTotalLen, constant(header.IPv4MinLen+16))},
				badFrame{name: "smaller than the frame, the rest padding", answer: syn, build: mutated(func(b []byte) []byte {
					return append(b, bytes.Repeat([]byte{0xee}, 18)...)
				})},
			),
			want: map[string]float64{"drops.ip_header": 2, "drops.tcp_header": 1, "syn_acks": 1},
		},
		{
			name: "IP options",
			run:  ipOptions,
			want: map[string]float64{"syn_acks": 1, "flows": 1, "handoffs_ok": 1},
		},
		{
			// The switch takes no IPv4 fragment (header.ParseIPv4): each
			// is dropped and counted, and a SYN sent as a whole set of
			// fragments gets no answer either. The log line shows the
			// switch kernel's reassembly counters, which stay still: the
			// fanout does not reassemble (no PACKET_FANOUT_FLAG_DEFRAG).
			name: "fragments",
			run: frames(
				badFrame{name: "first (MF)", build: withIPField(ipFragment, constant(ipFlagMF))},
				badFrame{name: "last (offset 1480)", build: withIPField(ipFragment, constant(fragOffset))},
				badFrame{name: "middle (MF, offset 1480)", build: withIPField(ipFragment, constant(ipFlagMF|fragOffset))},
				badFrame{name: "a whole SYN in two fragments", build: fragmented},
			),
			want:   map[string]float64{"drops.fragment": 5},
			kernel: []string{"Ip.ReasmReqds", "Ip.ReasmOKs"},
		},
		{
			name: "TCP options out of spec",
			run: frames(
				badFrame{name: "option length 0", build: withTCPOptions(253, 0, 1, 1)},
				badFrame{name: "option length 1", build: withTCPOptions(253, 1, 1, 1)},
				badFrame{name: "option past the header", build: withTCPOptions(1, 1, 253, 6)},
				badFrame{name: "MSS of length 3", build: withTCPOptions(2, 3, 5, 1)},
			),
			want: map[string]float64{"drops.tcp_options": 4},
		},
		{
			name: "SYN with data",
			run: frames(badFrame{name: "SYN with a request", answer: syn, build: func(c *rawConn) [][]byte {
				return [][]byte{c.frame(header.FlagSYN, c.seg.Seq, []byte(rawHello))}
			}}),
			want: map[string]float64{"syn_acks": 1},
		},
		{
			name: "data before the handshake ends",
			run: frames(
				badFrame{name: "request with no SYN before", build: func(c *rawConn) [][]byte {
					c.seg.Ack = 0x01234567
					return [][]byte{c.frame(header.FlagACK|header.FlagPSH, c.seg.Seq, []byte(rawHello))}
				}},
				badFrame{name: "request acknowledging the SYN-ACK wrong", build: func(c *rawConn) [][]byte {
					c.write(c.synFrame())
					if !c.await(rawSYNWait, func() bool { return c.synAckd }) {
						c.t.Fatalf("no SYN-ACK: %v", c.segs)
					}
					c.seg.Ack += 1000
					return [][]byte{c.frame(header.FlagACK|header.FlagPSH, c.seg.Seq, []byte(rawHello))}
				}},
				badFrame{name: "bare ACK with no SYN before", answer: header.FlagRST, build: func(c *rawConn) [][]byte {
					c.seg.Ack = 0x01234567
					return [][]byte{c.frame(header.FlagACK, c.seg.Seq, nil)}
				}},
			),
			want: map[string]float64{"drops.no_flow": 3, "resets": 1},
		},
		{
			name: "out-of-order and overlapping request segments",
			run:  outOfOrder,
			want: map[string]float64{"flows": 1, "handoffs_ok": 1},
		},
		{
			name: "pipelined requests in one segment",
			run:  pipelined,
			want: map[string]float64{"flows": 1, "handoffs_ok": 1},
		},
		{
			name: "invalid method",
			run:  switchError([]byte(rawBadMethod), 400),
			want: map[string]float64{"http_errors.400": 1},
		},
		{
			name: "oversize head",
			run: switchError([]byte("GET /hello HTTP/1.1\r\nHost: www.example.com\r\nX-Pad: "+
				strings.Repeat("a", rawOversize)+"\r\n\r\n"), 431),
			want: map[string]float64{"http_errors.431": 1},
		},
	}
}

// helloServed checks that the raw client got n responses of be2's /hello,
// byte-exact bodies, and closes the connection.
func helloServed(t *testing.T, c *rawConn, n int) string {
	t.Helper()
	got := c.awaitResponses(n)
	ok := len(got) == n
	for _, r := range got {
		ok = ok && r.status == 200 && r.body == helloBody
	}
	if !ok {
		t.Errorf("responses %+v, want %d of 200 %q; segments %v", got, n, helloBody, c.segs)
	}
	c.close()
	return fmt.Sprintf("handed off, %d responses of 200 %q", len(got), helloBody)
}

// ipOptions makes a whole connection whose every frame carries an IPv4
// router alert option: legal, so handed off and served.
func ipOptions(t *testing.T, h *rawHost) (int, string) {
	c := h.dial(t)
	c.seg.IPOptions = []byte(routerAlertIP)
	c.connect(rawWindow)
	c.send(header.FlagACK|header.FlagPSH, []byte(rawHello))
	return 1, "router alert on every frame: " + helloServed(t, c, 1)
}

// outOfOrder sends a request in three segments: the middle, then the end
// overlapping it, then the start overlapping the middle. The switch
// acknowledges the first two with duplicate ACKs, then parses the request
// right and hands it off.
func outOfOrder(t *testing.T, h *rawHost) (int, string) {
	c := h.dial(t)
	c.connect(rawWindow)
	req := []byte(rawHello)
	base := c.seg.Seq
	c.write(c.frame(header.FlagACK|header.FlagPSH, base+20, req[20:40]))
	c.write(c.frame(header.FlagACK|header.FlagPSH, base+30, req[30:]))
	dupAcks := func() (n int) {
		for _, s := range c.segs {
			if s.flags == header.FlagACK && s.ack == seqnum.Value(base) && s.len == 0 {
				n++
			}
		}
		return n
	}
	if !c.await(rawReplyMax, func() bool { return dupAcks() >= 2 }) {
		t.Errorf("out-of-order segments: %d duplicate ACKs of %d, want 2; segments %v", dupAcks(), base, c.segs)
	}
	c.write(c.frame(header.FlagACK|header.FlagPSH, base, req[:25]))
	c.seg.Seq = base + uint32(len(req))
	return 3, fmt.Sprintf("%d duplicate ACKs, then %s", dupAcks(), helloServed(t, c, 1))
}

// pipelined sends two requests in one segment: both are handed off with
// the connection and the back-end answers both.
func pipelined(t *testing.T, h *rawHost) (int, string) {
	c := h.dial(t)
	c.connect(rawWindow)
	c.send(header.FlagACK|header.FlagPSH, []byte(rawHello+rawHello))
	return 1, helloServed(t, c, 2)
}

// switchError returns the run function of a kind whose request the switch
// answers itself with status: the request goes in segments of rawChunk
// bytes; the response must be the switch's, byte-exact, with a FIN.
func switchError(req []byte, status int) func(t *testing.T, h *rawHost) (int, string) {
	return func(t *testing.T, h *rawHost) (int, string) {
		c := h.dial(t)
		c.connect(rawWindow)
		for chunk := range slices.Chunk(req, rawChunk) {
			c.send(header.FlagACK|header.FlagPSH, chunk)
		}
		c.await(rawReplyMax, func() bool { return c.finRcvd || c.rstRcvd })
		if want := l7.ErrorResponse(status); !c.finRcvd || !bytes.Equal(c.data, want) {
			t.Errorf("answer %q (FIN %v, RST %v), want %q and a FIN", c.data, c.finRcvd, c.rstRcvd, want)
		}
		c.close()
		return 1, fmt.Sprintf("%d-byte head in %d segments: %q", len(req), (len(req)+rawChunk-1)/rawChunk, bytes.SplitN(c.data, []byte("\r\n"), 2)[0])
	}
}

// zeroWindow is a client that completes its handshake offering a window
// of 0 and sends a bad request. The switch counts its 400 and may then
// only probe the window: one byte at a time, at its first unacknowledged
// byte. The client acknowledges the probes, still offering 0, then opens
// its window: the whole 400 and the FIN must follow. started is called
// once the 400 is counted.
func zeroWindow(t *testing.T, s *site, h *rawHost, started func()) {
	c := h.dial(t)
	before := totals(t, s)
	c.connect(0)
	c.send(header.FlagACK|header.FlagPSH, []byte(rawBadMethod))
	quiet := c.quiet(zeroWindowFirstProbe)
	after := totals(t, s)
	start := time.Now()
	started()
	t.Run("counted", func(t *testing.T) {
		checkCounted(t, before, after, map[string]float64{"http_errors.400": 1})
	})
	t.Run("handled", func(t *testing.T) {
		c.t = t // the connection goes on in this subtest
		if !quiet {
			t.Errorf("the switch sent %v into a zero window before any probe was due", c.segs)
		}
		first := c.iss + 1
		reqEnd := seqnum.Value(c.seg.Seq)
		probes := func() (n int) {
			for _, sg := range c.segs {
				switch {
				case sg.flags&(header.FlagSYN|header.FlagRST) != 0:
				case sg.len > 1 || sg.len == 1 && sg.seq != first || sg.flags&header.FlagFIN != 0:
					t.Fatalf("the switch sent %v into a zero window (first byte %d): more than a probe", sg, first)
				case sg.len == 1:
					n++
					if sg.ack != reqEnd {
						t.Errorf("probe %v does not acknowledge the request (up to %d)", sg, reqEnd)
					}
				}
			}
			return n
		}
		if !c.await(zeroWindowWait, func() bool { return probes() >= zeroWindowProbes }) {
			t.Fatalf("%d probes of the zero window in %v, want %d: %v", probes(), zeroWindowWait, zeroWindowProbes, c.segs)
		}
		n := probes()
		// The window opens: the whole answer and the FIN come.
		c.seg.Window = rawWindow
		c.send(header.FlagACK, nil)
		resp := c.awaitResponses(1)
		if len(resp) != 1 || resp[0].status != 400 || !c.finRcvd {
			t.Fatalf("after the window opened: %v (FIN %v), want the 400 and a FIN; segments %v", resp, c.finRcvd, c.segs)
		}
		c.close()
		t.Logf("zero window: sent 1 request; counted http_errors.400 +%v; outcome: %d one-byte probes, then, the window open, the 400 and FIN after %.1f s",
			after["http_errors.400"]-before["http_errors.400"], n, time.Since(start).Seconds())
	})
}
