package tcpfsm

import (
	"bytes"
	"testing"
	"time"

	"webswitch/internal/mono"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

const ms = time.Millisecond

var testCfg = Config{
	MSS: 1460, WScale: 7, Window: 4096,
	RTOInitial: 200 * ms, RTOMax: 2000 * ms, MaxRetries: 3, Linger: 1000 * ms,
}

var testTuple = Tuple{ClientIP: [4]byte{198, 18, 0, 10}, VIP: [4]byte{198, 18, 0, 100}, ClientPort: 40000, VIPPort: 80}

func testCookies() *Cookies {
	return NewCookies([16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
}

// peer is a scripted client: it did the handshake and sends segments.
type peer struct {
	t    *testing.T
	c    Conn
	k    *Cookies
	isn  seqnum.Value // client ISN
	iss  seqnum.Value // switch ISN from the SYN-ACK
	opts header.SynOptions
	out  Out
	now  mono.Time
}

func newPeer(t *testing.T, opts header.SynOptions) *peer {
	p := &peer{t: t, k: testCookies(), isn: 0xFFFFFF00, opts: opts, now: mono.Time(5 * CookiePeriod)}
	var s Seg
	testCfg.SynAck(p.now, p.k, &testTuple, p.isn, &opts, &s)
	if s.Flags != header.FlagSYN|header.FlagACK || s.Ack != p.isn+1 {
		t.Fatalf("SYN-ACK = %+v", s)
	}
	p.iss = s.Seq
	return p
}

// accept sends the handshake's last ACK carrying data.
func (p *peer) accept(data string) bool {
	p.out.Reset()
	seg := Segment{Seq: p.isn + 1, Ack: p.iss + 1, Flags: header.FlagACK, Window: 0xFFFF, Payload: []byte(data)}
	return p.c.Accept(p.now, &testCfg, p.k, &testTuple, &seg, make([]byte, 0, testCfg.BufferSize()), &p.out)
}

// send sends a segment at offset off (bytes after the client's ISN+1).
func (p *peer) send(off int, flags uint8, data string, window uint16) {
	p.out.Reset()
	seg := Segment{Seq: p.isn.Add(1 + seqnum.Size(off)), Ack: p.iss + 1, Flags: flags | header.FlagACK, Window: window, Payload: []byte(data)}
	p.c.Input(p.now, &seg, &p.out)
}

func (p *peer) wantAcks(acks ...int) {
	p.t.Helper()
	if p.out.N != len(acks) {
		p.t.Fatalf("sent %d segments, want %d: %+v", p.out.N, len(acks), p.out.Segs[:p.out.N])
	}
	for i, a := range acks {
		if got := p.out.Segs[i].Ack; got != p.isn.Add(1+seqnum.Size(a)) {
			p.t.Errorf("segment %d acks offset %d, want %d", i, int32(got-p.isn-1), a)
		}
	}
}

func TestCookies(t *testing.T) {
	k := testCookies()
	now := mono.Time(10 * CookiePeriod)
	tests := []struct {
		name string
		in   header.SynOptions
		want header.SynOptions
	}{
		{"all options", header.SynOptions{MSS: 1460, WScale: 7, WScaleOK: true, SACKOK: true}, header.SynOptions{MSS: 1460, WScale: 7, WScaleOK: true, SACKOK: true}},
		{"no options", header.SynOptions{}, header.SynOptions{MSS: 536}},
		{"mss rounded down", header.SynOptions{MSS: 1400, SACKOK: true}, header.SynOptions{MSS: 1220, SACKOK: true}},
		{"jumbo", header.SynOptions{MSS: 9000, WScale: 14, WScaleOK: true}, header.SynOptions{MSS: 8960, WScale: 14, WScaleOK: true}},
		{"loopback mss", header.SynOptions{MSS: 65495, WScale: 0, WScaleOK: true}, header.SynOptions{MSS: 8960, WScale: 0, WScaleOK: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := k.Make(now, &testTuple, 1234, &tt.in)
			var got header.SynOptions
			if !k.Check(now, &testTuple, 1234, c, &got) {
				t.Fatal("own cookie rejected")
			}
			if got != tt.want {
				t.Errorf("options = %+v, want %+v", got, tt.want)
			}
			if !k.Check(now.Add(CookiePeriod), &testTuple, 1234, c, &got) {
				t.Error("cookie rejected in the next epoch")
			}
			if k.Check(now.Add(2*CookiePeriod), &testTuple, 1234, c, &got) {
				t.Error("cookie accepted two epochs later")
			}
			if k.Check(now, &testTuple, 1235, c, &got) {
				t.Error("cookie accepted for another client ISN")
			}
			other := testTuple
			other.ClientPort++
			if k.Check(now, &other, 1234, c, &got) {
				t.Error("cookie accepted for another port")
			}
			if k.Check(now, &testTuple, 1234, c^0x100, &got) {
				t.Error("altered cookie accepted")
			}
		})
	}
}

func TestCookieForgeryRate(t *testing.T) {
	k := testCookies()
	var o header.SynOptions
	accepted := 0
	for i := range 1 << 16 {
		if k.Check(0, &testTuple, 1, seqnum.Value(i*7919), &o) {
			accepted++
		}
	}
	// 24 bits of hash, two epochs: about 2^16 * 2 / 2^24 = 0.008 expected.
	if accepted > 2 {
		t.Errorf("%d of 65536 guessed cookies accepted", accepted)
	}
}

func TestAcceptRejects(t *testing.T) {
	p := newPeer(t, header.SynOptions{MSS: 1460})
	tests := []struct {
		name string
		seg  Segment
	}{
		{"wrong ack", Segment{Seq: p.isn + 1, Ack: p.iss + 2, Flags: header.FlagACK}},
		{"wrong seq", Segment{Seq: p.isn + 2, Ack: p.iss + 1, Flags: header.FlagACK}},
		{"no ack flag", Segment{Seq: p.isn + 1, Ack: p.iss + 1}},
		{"rst", Segment{Seq: p.isn + 1, Ack: p.iss + 1, Flags: header.FlagACK | header.FlagRST}},
		{"syn", Segment{Seq: p.isn + 1, Ack: p.iss + 1, Flags: header.FlagACK | header.FlagSYN}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Conn
			var out Out
			if c.Accept(p.now, &testCfg, p.k, &testTuple, &tt.seg, make([]byte, 0, 100), &out) {
				t.Error("accepted")
			}
			if c.State() != StateInvalid || out.N != 0 {
				t.Errorf("state %v, %d segments", c.State(), out.N)
			}
		})
	}
}

func TestRequestAcrossSegments(t *testing.T) {
	tests := []struct {
		name  string
		steps []struct {
			off  int
			data string
			acks []int // ACKs the switch sends for this step
		}
		want string
	}{
		{
			name: "in order",
			steps: []struct {
				off  int
				data string
				acks []int
			}{{0, "GET / HT", nil}, {8, "TP/1.1\r\n", nil}, {16, "\r\n", nil}},
			want: "GET / HTTP/1.1\r\n\r\n",
		},
		{
			name: "out of order then gap filled",
			steps: []struct {
				off  int
				data string
				acks []int
			}{{8, "TP/1.1\r\n", []int{0}}, {16, "\r\n", []int{0}}, {0, "GET / HT", nil}},
			want: "GET / HTTP/1.1\r\n\r\n",
		},
		{
			name: "duplicate and overlap",
			steps: []struct {
				off  int
				data string
				acks []int
			}{{0, "GET / HT", nil}, {0, "GET / HT", []int{8}}, {4, "/ HTTP/1.1\r\n", nil}, {4, "/ H", []int{16}}},
			want: "GET / HTTP/1.1\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPeer(t, header.SynOptions{MSS: 1460, WScale: 7, WScaleOK: true, SACKOK: true})
			if !p.accept("") {
				t.Fatal("cookie ACK rejected")
			}
			p.wantAcks()
			for _, st := range tt.steps {
				p.send(st.off, 0, st.data, 512)
				p.wantAcks(st.acks...)
			}
			if got := string(p.c.Request()); got != tt.want {
				t.Errorf("request = %q, want %q", got, tt.want)
			}
			p.out.Reset()
			p.c.Ack(&p.out)
			p.wantAcks(len(tt.want))
		})
	}
}

func TestWindowLimit(t *testing.T) {
	p := newPeer(t, header.SynOptions{MSS: 1460, WScale: 2, WScaleOK: true})
	if !p.accept("") {
		t.Fatal("cookie ACK rejected")
	}
	big := bytes.Repeat([]byte("x"), testCfg.BufferSize()+500)
	p.send(0, 0, string(big), 512)
	if got := len(p.c.Request()); got != testCfg.BufferSize() {
		t.Errorf("buffered %d bytes, want the buffer's %d", got, testCfg.BufferSize())
	}
	p.out.Reset()
	p.c.Ack(&p.out)
	if w := p.out.Segs[0].Window; w != 0 {
		t.Errorf("window after a full buffer = %d, want 0", w)
	}
	p.send(testCfg.BufferSize(), 0, "more", 512)
	p.wantAcks(testCfg.BufferSize())
}

func TestWindowNeverShrinks(t *testing.T) {
	p := newPeer(t, header.SynOptions{MSS: 1460, WScale: 7, WScaleOK: true})
	p.accept("")
	edge := p.isn.Add(1 + seqnum.Size(testCfg.Window))
	for off := 0; off < testCfg.Window; off += 100 {
		p.send(off, 0, string(bytes.Repeat([]byte("a"), 100)), 512)
		p.out.Reset()
		p.c.Ack(&p.out)
		s := p.out.Segs[0]
		right := s.Ack.Add(seqnum.Size(s.Window) << testCfg.WScale)
		if right.LessThan(edge) {
			t.Fatalf("at offset %d the right edge moved left: %d < %d", off, right, edge)
		}
	}
}

func TestRespond(t *testing.T) {
	resp := []byte("HTTP/1.1 400 Bad Request\r\n\r\n")
	p := newPeer(t, header.SynOptions{MSS: 1460})
	p.accept("BAD\r\n\r\n")
	p.out.Reset()
	p.c.Respond(p.now, resp, &p.out)
	if p.out.N != 1 || !bytes.Equal(p.out.Segs[0].Payload, resp) || p.out.Segs[0].Flags&header.FlagFIN == 0 {
		t.Fatalf("response segments %+v", p.out.Segs[:p.out.N])
	}
	if p.out.Segs[0].Seq != p.iss+1 || p.out.Segs[0].Ack != p.isn.Add(8) {
		t.Errorf("seq/ack %d/%d", p.out.Segs[0].Seq, p.out.Segs[0].Ack)
	}
	// The client acknowledges data and FIN, then sends its FIN.
	p.out.Reset()
	seg := Segment{Seq: p.isn.Add(8), Ack: p.iss.Add(1 + seqnum.Size(len(resp)) + 1), Flags: header.FlagACK, Window: 512}
	p.c.Input(p.now, &seg, &p.out)
	if p.c.State() != FinWait {
		t.Fatalf("state %v, want fin-wait", p.c.State())
	}
	seg.Flags |= header.FlagFIN
	p.out.Reset()
	p.c.Input(p.now, &seg, &p.out)
	if !p.out.Free || p.c.State() != Closed || !p.out.PeerFIN {
		t.Errorf("after client FIN: state %v out %+v", p.c.State(), p.out)
	}
	p.wantAcks(8)
}

func TestRespondSegmentsByMSS(t *testing.T) {
	resp := bytes.Repeat([]byte("r"), 1500)
	p := newPeer(t, header.SynOptions{MSS: 536})
	p.accept("x")
	p.out.Reset()
	p.c.Respond(p.now, resp, &p.out)
	var got []byte
	for _, s := range p.out.Segs[:p.out.N] {
		if len(s.Payload) > 536 {
			t.Errorf("segment of %d bytes over MSS 536", len(s.Payload))
		}
		got = append(got, s.Payload...)
	}
	if !bytes.Equal(got, resp) || p.out.Segs[p.out.N-1].Flags&header.FlagFIN == 0 {
		t.Errorf("response not sent whole with FIN: %d bytes in %d segments", len(got), p.out.N)
	}
}

func TestRetransmission(t *testing.T) {
	resp := []byte("HTTP/1.1 503 x\r\n\r\n")
	p := newPeer(t, header.SynOptions{MSS: 1460})
	p.accept("GET")
	p.out.Reset()
	p.c.Respond(p.now, resp, &p.out)
	first := p.out.Segs[0]
	deadline := p.c.Deadline()
	if deadline != p.now.Add(testCfg.RTOInitial) {
		t.Fatalf("deadline %d, want now+RTO", deadline)
	}
	p.out.Reset()
	p.c.Tick(deadline-1, &p.out)
	if p.out.N != 0 {
		t.Fatal("retransmitted before the deadline")
	}
	rto := testCfg.RTOInitial
	for i := 0; i < testCfg.MaxRetries; i++ {
		p.out.Reset()
		now := p.c.Deadline()
		p.c.Tick(now, &p.out)
		if p.out.N != 1 || p.out.Segs[0].Seq != first.Seq || !bytes.Equal(p.out.Segs[0].Payload, resp) || p.out.Segs[0].Flags&header.FlagFIN == 0 {
			t.Fatalf("retransmission %d: %+v", i, p.out.Segs[:p.out.N])
		}
		rto = min(2*rto, testCfg.RTOMax)
		if got := p.c.Deadline().Sub(now); got != rto {
			t.Errorf("retransmission %d: next timeout %v, want %v", i, got, rto)
		}
	}
	p.out.Reset()
	p.c.Tick(p.c.Deadline(), &p.out)
	if !p.out.Free || p.out.N != 1 || p.out.Segs[0].Flags != header.FlagRST {
		t.Errorf("after max retries: %+v", p.out)
	}
}

// zeroWindowPeer returns a connection whose client completed the
// handshake with a window of 0 and sent one byte, answered with resp.
func zeroWindowPeer(t *testing.T, resp []byte) *peer {
	p := newPeer(t, header.SynOptions{MSS: 1460})
	p.out.Reset()
	seg := Segment{Seq: p.isn + 1, Ack: p.iss + 1, Flags: header.FlagACK, Window: 0, Payload: []byte("G")}
	if !p.c.Accept(p.now, &testCfg, p.k, &testTuple, &seg, make([]byte, 0, testCfg.BufferSize()), &p.out) {
		t.Fatal("rejected")
	}
	p.out.Reset()
	p.c.Respond(p.now, resp, &p.out)
	return p
}

func TestZeroWindowProbe(t *testing.T) {
	resp := []byte("HTTP/1.1 503 x\r\n\r\n")
	p := zeroWindowPeer(t, resp)
	if p.out.N != 0 {
		t.Fatalf("sent into a zero window: %+v", p.out.Segs[:p.out.N])
	}
	p.out.Reset()
	p.c.Tick(p.c.Deadline(), &p.out)
	if p.out.N != 1 || len(p.out.Segs[0].Payload) != 1 {
		t.Fatalf("probe: %+v", p.out.Segs[:p.out.N])
	}
	// The window opens: the rest goes out.
	p.out.Reset()
	seg := Segment{Seq: p.isn + 2, Ack: p.iss + 2, Flags: header.FlagACK, Window: 1000}
	p.c.Input(p.now, &seg, &p.out)
	if p.out.N != 1 || !bytes.Equal(p.out.Segs[0].Payload, resp[1:]) {
		t.Fatalf("after window opened: %+v", p.out.Segs[:p.out.N])
	}
}

// TestZeroWindowForever checks that a client whose window never opens
// cannot keep the connection: the probes back off and, after MaxRetries,
// the switch resets it and frees it.
func TestZeroWindowForever(t *testing.T) {
	p := zeroWindowPeer(t, []byte("HTTP/1.1 400 x\r\n\r\n"))
	probes := 0
	var last time.Duration
	for !p.out.Free {
		if probes > testCfg.MaxRetries+1 {
			t.Fatalf("%d probes and still not given up", probes)
		}
		next := p.c.Deadline()
		if gap := next.Sub(p.now); probes > 1 && gap < last {
			t.Errorf("probe %d after %v, less than the previous gap %v", probes, gap, last)
		}
		last = next.Sub(p.now)
		p.now = next
		p.out.Reset()
		p.c.Tick(p.now, &p.out)
		for _, sg := range p.out.Segs[:p.out.N] {
			if len(sg.Payload) > 1 {
				t.Fatalf("sent %d bytes into a zero window", len(sg.Payload))
			}
		}
		if !p.out.Free {
			probes++
		}
	}
	if p.out.N != 1 || p.out.Segs[0].Flags&header.FlagRST == 0 {
		t.Errorf("giving up: %+v, want a RST", p.out.Segs[:p.out.N])
	}
	if probes == 0 {
		t.Error("no probe before giving up")
	}
}

func TestResetAndFin(t *testing.T) {
	tests := []struct {
		name     string
		off      int
		flags    uint8
		wantFree bool
		wantFIN  bool
		acks     []int
	}{
		{"rst in window", 3, header.FlagRST, true, false, nil},
		{"rst out of window", 100000, header.FlagRST, false, false, nil},
		{"fin in order", 3, header.FlagFIN, false, true, []int{4}},
		{"fin out of order", 5, header.FlagFIN, false, false, []int{3}},
		{"syn on established", 0, header.FlagSYN, false, false, []int{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPeer(t, header.SynOptions{MSS: 1460})
			p.accept("GET")
			p.send(tt.off, tt.flags, "", 512)
			if p.out.Free != tt.wantFree || p.out.PeerFIN != tt.wantFIN {
				t.Errorf("free %v fin %v", p.out.Free, p.out.PeerFIN)
			}
			p.wantAcks(tt.acks...)
		})
	}
}

func TestDiscardWhileResponding(t *testing.T) {
	p := newPeer(t, header.SynOptions{MSS: 1460})
	p.accept("POST / HTTP/1.1\r\n\r\n")
	p.out.Reset()
	p.c.Respond(p.now, []byte("HTTP/1.1 404 x\r\n\r\n"), &p.out)
	p.send(19, 0, "body bytes", 512)
	p.wantAcks(29)
}

func TestNoAllocs(t *testing.T) {
	k := testCookies()
	buf := make([]byte, 0, testCfg.BufferSize())
	var c Conn
	var out Out
	var s Seg
	o := header.SynOptions{MSS: 1460, WScale: 7, WScaleOK: true, SACKOK: true}
	data := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	allocs := testing.AllocsPerRun(100, func() {
		testCfg.SynAck(0, k, &testTuple, 99, &o, &s)
		out.Reset()
		seg := Segment{Seq: 100, Ack: s.Seq + 1, Flags: header.FlagACK, Window: 100, Payload: data}
		if !c.Accept(0, &testCfg, k, &testTuple, &seg, buf, &out) {
			panic("rejected")
		}
		c.Ack(&out)
		c.Respond(0, data, &out)
		c.Tick(c.Deadline(), &out)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per connection", allocs)
	}
}

// TestParams checks the values handed off, with and without a FIN right
// after the request (a client that half-closes after sending it).
func TestParams(t *testing.T) {
	const req = "GET / HTTP/1.0\r\n\r\n"
	for _, fin := range []bool{false, true} {
		p := newPeer(t, header.SynOptions{MSS: 1460, WScale: 3, WScaleOK: true, SACKOK: true}) // an MSS of the cookie table
		if !p.accept("") {
			t.Fatal("cookie ACK rejected")
		}
		flags := uint8(0)
		if fin {
			flags = header.FlagFIN
		}
		p.send(0, flags, req, 1000)
		if p.out.PeerFIN != fin || !p.out.Delivered {
			t.Fatalf("fin=%v: out = %+v", fin, p.out)
		}
		if fin {
			p.wantAcks(len(req) + 1) // the switch acknowledges the FIN at once
		}
		p.c.StartHandoff()
		got := p.c.Params()
		want := Params{
			ISS: p.iss, IRS: p.isn, RcvNxt: p.isn.Add(1 + seqnum.Size(len(req))),
			SndWnd: 1000 << 3, RcvWnd: got.RcvWnd, Opts: p.opts, RcvWScale: testCfg.WScale, FIN: fin,
		}
		if got != want {
			t.Errorf("fin=%v: Params = %+v, want %+v", fin, got, want)
		}
		if got.RcvWnd == 0 {
			t.Errorf("fin=%v: RcvWnd = 0", fin)
		}
	}
}
