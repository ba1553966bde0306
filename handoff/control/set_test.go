package control

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"webswitch/handoff"
	"webswitch/handoff/control/controltest"
	"webswitch/internal/mono"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func testConfig() *Config {
	return &Config{
		Secret: testSecret, ConnectTimeout: time.Second,
		ReconnectMin: 100 * time.Millisecond, ReconnectMax: 800 * time.Millisecond,
		HealthInterval: time.Second, HealthTimeout: 500 * time.Millisecond, HealthRise: 2, HealthFall: 3,
		AnswerTimeout: 2 * time.Second,
	}
}

// owner records what the Set tells it.
type owner struct {
	answers []answer
	owners  []owners
	lost    []int
	downs   []int
}

type owners struct {
	b    int
	id   uint64
	body string
	ok   bool
}

type answer struct {
	b  int
	id uint64
	ok bool
}

func (o *owner) Answered(b int, id uint64, ok bool) { o.answers = append(o.answers, answer{b, id, ok}) }
func (o *owner) Lost(b int)                         { o.lost = append(o.lost, b) }
func (o *owner) Down(b int)                         { o.downs = append(o.downs, b) }
func (o *owner) Owners(b int, id uint64, body []byte, ok bool) {
	o.owners = append(o.owners, owners{b, id, string(body), ok})
}

// fixture is a Set of one back-end whose dialer hands out in-memory pipes
// (or fails, while refuse is set), with a clock the test moves.
type fixture struct {
	t      *testing.T
	set    *Set
	own    *owner
	now    mono.Time
	agents []*controltest.Agent // one per dial
	dials  []mono.Time
	refuse bool
	mute   bool               // new agents send nothing (no HELLO)
	muted  []*controltest.End // their ends
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, own: &owner{}, now: mono.Time(time.Hour)}
	targets := []Target{{Name: "be1", Agent: netip.MustParseAddrPort("198.18.0.21:7070")}}
	f.set = NewSet(testConfig(), targets, f.dial, f.own, zerolog.Nop(), f.now)
	return f
}

func (f *fixture) dial(netip.AddrPort) (Socket, error) {
	f.dials = append(f.dials, f.now)
	if f.refuse {
		return nil, errors.New("connection refused")
	}
	sw, ag := controltest.Pipe()
	if f.mute {
		f.muted = append(f.muted, ag)
	} else {
		f.agents = append(f.agents, controltest.NewAgent(ag, testSecret))
	}
	return sw, nil
}

// run moves the clock by d, steps the Set, then moves bytes both ways
// until neither side has more.
func (f *fixture) run(d time.Duration) {
	f.now = f.now.Add(d)
	f.set.Step(f.now)
	for moved := true; moved; {
		moved = false
		f.set.Events(nil, f.now)
		for _, a := range f.agents {
			m, err := a.Pump()
			if err != nil {
				f.t.Fatalf("agent: %v", err)
			}
			moved = moved || m
		}
	}
}

func (f *fixture) last() *controltest.Agent { return f.agents[len(f.agents)-1] }

// TestReconnectBackoff: failed connection attempts are retried after
// ReconnectMin, doubling up to ReconnectMax; the back-end goes down once;
// a success resets the backoff.
func TestReconnectBackoff(t *testing.T) {
	f := newFixture(t)
	f.refuse = true
	for len(f.dials) < 8 {
		f.run(50 * time.Millisecond)
	}
	var gaps []time.Duration
	for i := 1; i < len(f.dials); i++ {
		gaps = append(gaps, f.dials[i].Sub(f.dials[i-1]))
	}
	want := []time.Duration{100, 200, 400, 800, 800, 800, 800}
	if len(gaps) < len(want) {
		t.Fatalf("%d dials, gaps %v", len(f.dials), gaps)
	}
	for i, w := range want {
		if gaps[i] != w*time.Millisecond {
			t.Fatalf("gaps between attempts %v, want %v ms", gaps, want)
		}
	}
	if len(f.own.downs) != 1 || len(f.own.lost) != 0 {
		t.Errorf("downs %v, lost %v; want down once, nothing lost (never ready)", f.own.downs, f.own.lost)
	}
	f.refuse = false
	f.run(800 * time.Millisecond)
	if st := f.set.Conn(0).State(); st != StateReady || f.set.Conn(0).backoff != 0 {
		t.Errorf("after the agent came back: %v, backoff %v; want ready, backoff reset", st, f.set.Conn(0).backoff)
	}
}

// TestConnectTimeout: an agent that accepts but never says HELLO is given
// up on after ConnectTimeout.
func TestConnectTimeout(t *testing.T) {
	f := newFixture(t)
	f.mute = true
	f.run(0)
	if st := f.set.Conn(0).State(); st != StateAuth {
		t.Fatalf("connected to a mute agent: %v, want auth", st)
	}
	f.run(999 * time.Millisecond)
	if st := f.set.Conn(0).State(); st != StateAuth {
		t.Fatalf("before the timeout: %v, want auth", st)
	}
	f.run(time.Millisecond)
	if st := f.set.Conn(0).State(); st != StateIdle || !f.muted[0].PeerClosed() || len(f.own.downs) != 1 {
		t.Errorf("at the timeout: %v, closed %v, downs %v; want idle, closed, down", st, f.muted[0].PeerClosed(), f.own.downs)
	}
}

// TestAnswersAndLoss: OK and ERR reach the owner with their ids; when the
// ready connection breaks, the owner hears Lost and Down once, and the
// Set reconnects.
func TestAnswersAndLoss(t *testing.T) {
	f := newFixture(t)
	f.run(0)
	if !f.set.Usable(0) {
		t.Fatal("not usable after the handshake")
	}
	st := handoff.ConnState{
		Client: netip.MustParseAddrPort("198.18.0.10:40000"), VIP: netip.MustParseAddrPort("198.18.0.100:80"),
		MSS: 1460, SndWnd: 1000, RcvWnd: 1000, SndISN: 7, SndNxt: 8, RcvIRS: 100,
	}
	req := []byte("GET / HTTP/1.1\r\n\r\n")
	st.RcvNxt = st.RcvIRS + 1 + uint32(len(req))
	for id := uint64(1); id <= 2; id++ {
		if err := f.set.SendHandoff(0, id, &st, req); err != nil {
			t.Fatal(err)
		}
	}
	f.run(0)
	a := f.last()
	if len(a.Msgs) != 2 || a.Msgs[0].Type != handoff.MsgHandoff {
		t.Fatalf("agent got %+v, want two HANDOFFs", a.Msgs)
	}
	a.Sess.Send(handoff.MsgOK, 1, nil)
	a.Sess.SendErr(2, handoff.ErrCodeRecreate, "test")
	f.run(0)
	if want := []answer{{0, 1, true}, {0, 2, false}}; len(f.own.answers) != 2 || f.own.answers[0] != want[0] || f.own.answers[1] != want[1] {
		t.Fatalf("answers %+v, want %+v", f.own.answers, want)
	}
	a.Sock.Close()
	f.run(0)
	if len(f.own.lost) != 1 || len(f.own.downs) != 1 || f.set.Usable(0) {
		t.Fatalf("after the agent closed: lost %v, downs %v, usable %v", f.own.lost, f.own.downs, f.set.Usable(0))
	}
	f.run(100 * time.Millisecond)
	if len(f.agents) != 2 || f.set.Conn(0).State() != StateReady {
		t.Errorf("%d dials, state %v; want a new ready connection after ReconnectMin", len(f.agents), f.set.Conn(0).State())
	}
}

// TestLookup: a LOOKUP leaves with its id marked, and the agent's OWNERS
// or ERR for it reach Owners, not Answered, with the id the shard gave;
// an ERR for a HANDOFF still reaches Answered, as OK when it says the
// agent holds the connection already.
func TestLookup(t *testing.T) {
	f := newFixture(t)
	if f.set.Ready(0) {
		t.Fatal("ready before connecting")
	}
	f.run(0)
	if !f.set.Ready(0) {
		t.Fatal("not ready after the handshake")
	}
	ids := []handoff.FlowID{{Client: netip.MustParseAddrPort("198.18.0.10:40000"), VIP: netip.MustParseAddrPort("198.18.0.100:80")}}
	body, err := handoff.AppendLookupBody(nil, ids)
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 2; id++ {
		if err := f.set.SendLookup(0, id, body); err != nil {
			t.Fatal(err)
		}
	}
	f.run(0)
	a := f.last()
	if len(a.Msgs) != 2 || a.Msgs[0].Type != handoff.MsgLookup || string(a.Msgs[0].Body) != string(body) {
		t.Fatalf("agent got %+v, want two LOOKUPs", a.Msgs)
	}
	owned := handoff.AppendOwner(nil, handoff.Owner{State: handoff.SockEstablished, IdleMS: 3})
	a.Sess.Send(handoff.MsgOwners, a.Msgs[0].ID, owned)
	a.Sess.SendErr(a.Msgs[1].ID, handoff.ErrCodeBusy, "test")
	a.Sess.SendErr(7, handoff.ErrCodeRecreate, "a HANDOFF's")
	a.Sess.SendErr(8, handoff.ErrCodeExists, "the socket is here already")
	f.run(0)
	want := []owners{{0, 1, string(owned), true}, {0, 2, "", false}}
	if len(f.own.owners) != 2 || f.own.owners[0] != want[0] || f.own.owners[1] != want[1] {
		t.Errorf("Owners heard %+v, want %+v", f.own.owners, want)
	}
	if len(f.own.answers) != 2 || f.own.answers[0] != (answer{0, 7, false}) || f.own.answers[1] != (answer{0, 8, true}) {
		t.Errorf("Answered heard %+v, want the HANDOFFs' ERR, and ERR(exists) as OK", f.own.answers)
	}
}

// TestReadBufferByDirection: the switch's read buffer holds the largest
// message an agent sends, not a HANDOFF (which only the switch sends), and
// a message announcing a body over that size, or of a type the switch
// never receives, breaks the connection from its header alone.
func TestReadBufferByDirection(t *testing.T) {
	for _, tt := range []struct {
		name string
		typ  handoff.MsgType
		size uint32
	}{
		{"oversized LOAD", handoff.MsgLoad, handoff.MaxBodyToSwitch + 1},
		{"HANDOFF to the switch", handoff.MsgHandoff, 64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.run(0)
			if n := len(f.set.Conn(0).rbuf); n != handoff.MaxFrameToSwitch {
				t.Fatalf("read buffer %d bytes, want MaxFrameToSwitch = %d", n, handoff.MaxFrameToSwitch)
			}
			var hdr [handoff.HeaderLen]byte
			hdr[0], hdr[1] = handoff.Version, byte(tt.typ)
			binary.BigEndian.PutUint32(hdr[4:], tt.size)
			f.last().Sock.Write(hdr[:]) // the header only: no body follows
			f.run(0)
			if st := f.set.Conn(0).State(); st != StateIdle || len(f.own.lost) != 1 {
				t.Errorf("after the header: %v, lost %v; want the connection closed at once", st, f.own.lost)
			}
		})
	}
}
