package handoff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var testSecret = []byte("correct horse battery staple")

// constRand is a nonce source that repeats one byte, for reproducible frames.
type constRand byte

func (c constRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// pump moves everything pending on from into to, as a connection would, and
// returns the application messages to received (bodies copied).
func pump(from, to *Session) ([]Msg, error) {
	in := append([]byte(nil), from.Pending()...)
	from.Written(len(in))
	var msgs []Msg
	for len(in) > 0 {
		n, m, ok, err := to.Receive(in)
		if err != nil {
			return msgs, err
		}
		if n == 0 {
			return msgs, io.ErrUnexpectedEOF
		}
		if ok {
			m.Body = append([]byte(nil), m.Body...)
			msgs = append(msgs, m)
		}
		in = in[n:]
	}
	return msgs, nil
}

// handshake runs the handshake between sw and ag and returns the first error.
func handshake(sw, ag *Session) error {
	for _, step := range []struct{ from, to *Session }{{ag, sw}, {sw, ag}, {ag, sw}} {
		if _, err := pump(step.from, step.to); err != nil {
			return err
		}
	}
	return nil
}

// readyPair returns a switch and an agent session that completed the
// handshake with fixed nonces.
func readyPair(t testing.TB) (sw, ag *Session) {
	t.Helper()
	sw = NewSwitchSession(testSecret, constRand(2))
	ag = NewAgentSession(testSecret, constRand(1))
	if err := handshake(sw, ag); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if !sw.Ready() || !ag.Ready() {
		t.Fatalf("after handshake: switch ready %v, agent ready %v", sw.Ready(), ag.Ready())
	}
	return sw, ag
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name         string
		switchSecret []byte
		agentSecret  []byte
		want         error
	}{
		{"same secret", testSecret, testSecret, nil},
		{"wrong secret", []byte("wrong"), testSecret, ErrAuth},
		{"secret prefix", testSecret[:len(testSecret)-1], testSecret, ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw := NewSwitchSession(tt.switchSecret, nil)
			ag := NewAgentSession(tt.agentSecret, nil)
			err := handshake(sw, ag)
			if !errors.Is(err, tt.want) {
				t.Fatalf("handshake: %v, want %v", err, tt.want)
			}
			if ready := err == nil; sw.Ready() != ready || ag.Ready() != ready {
				t.Errorf("switch ready %v, agent ready %v, want %v", sw.Ready(), ag.Ready(), ready)
			}
		})
	}
}

// TestHandshakeForgedAgent checks that the switch refuses an AUTH_OK whose
// proof does not match, as from an agent without the secret.
func TestHandshakeForgedAgent(t *testing.T) {
	sw := NewSwitchSession(testSecret, nil)
	ag := NewAgentSession(testSecret, nil)
	for _, step := range []struct{ from, to *Session }{{ag, sw}, {sw, ag}} {
		if _, err := pump(step.from, step.to); err != nil {
			t.Fatal(err)
		}
	}
	authOK := append([]byte(nil), ag.Pending()...)
	authOK[HeaderLen] ^= 1
	if _, _, _, err := sw.Receive(authOK); !errors.Is(err, ErrAuth) {
		t.Errorf("forged AUTH_OK: %v, want ErrAuth", err)
	}
}

// TestHandshakeReplay checks that a recorded handshake and session cannot be
// replayed into a new session: the new nonces change every key.
func TestHandshakeReplay(t *testing.T) {
	sw, _ := readyPair(t)
	st := testState(0)
	if err := sw.SendHandoff(1, &st, nil); err != nil {
		t.Fatal(err)
	}
	recorded := append([]byte(nil), sw.Pending()...)

	ag2 := NewAgentSession(testSecret, constRand(3)) // a different Na
	sw2 := NewSwitchSession(testSecret, constRand(2))
	if err := handshake(sw2, ag2); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ag2.Receive(recorded); !errors.Is(err, ErrMAC) {
		t.Errorf("message from another session: %v, want ErrMAC", err)
	}
}

func TestSessionMessages(t *testing.T) {
	sw, ag := readyPair(t)
	st := testState(5)
	if err := sw.SendHandoff(7, &st, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := sw.Send(MsgPing, 8, nil); err != nil {
		t.Fatal(err)
	}
	got, err := pump(sw, ag)
	if err != nil {
		t.Fatal(err)
	}
	want := []Msg{
		{Type: MsgHandoff, ID: 7, Body: AppendHandoffBody(nil, &st, []byte("hello"))},
		{Type: MsgPing, ID: 8, Body: nil},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("agent received (-want +got):\n%s", diff)
	}

	if err := ag.Send(MsgOK, 7, nil); err != nil {
		t.Fatal(err)
	}
	if err := ag.SendErr(9, ErrCodeRecreate, "no"); err != nil {
		t.Fatal(err)
	}
	if err := ag.Send(MsgLoad, 0, AppendLoadBody(nil, 3, HealthDraining)); err != nil {
		t.Fatal(err)
	}
	if err := ag.Send(MsgPong, 8, nil); err != nil {
		t.Fatal(err)
	}
	got, err = pump(ag, sw)
	if err != nil {
		t.Fatal(err)
	}
	want = []Msg{
		{Type: MsgOK, ID: 7, Body: nil},
		{Type: MsgErr, ID: 9, Body: AppendErrBody(nil, ErrCodeRecreate, "no")},
		{Type: MsgLoad, ID: 0, Body: AppendLoadBody(nil, 3, HealthDraining)},
		{Type: MsgPong, ID: 8, Body: nil},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("switch received (-want +got):\n%s", diff)
	}
}

func TestSessionSendErrors(t *testing.T) {
	sw, ag := readyPair(t)
	fresh := NewSwitchSession(testSecret, nil)
	st := testState(0)
	badState := testState(0)
	badState.MSS = 10
	window, overWindow := testState(MaxRequest), testState(MaxRequest+1)
	tests := []struct {
		name string
		send func() error
		want error
	}{
		{"before handshake", func() error { return fresh.Send(MsgPing, 1, nil) }, ErrState},
		{"handoff before handshake", func() error { return fresh.SendHandoff(1, &st, nil) }, ErrState},
		{"handshake type", func() error { return sw.Send(MsgHello, 1, nil) }, ErrType},
		{"switch sends OK", func() error { return sw.Send(MsgOK, 1, nil) }, ErrType},
		{"agent sends HANDOFF", func() error { return ag.SendHandoff(1, &st, nil) }, ErrType},
		{"unknown type", func() error { return sw.Send(13, 1, nil) }, ErrType},
		{"body too large", func() error { return sw.Send(MsgPing, 1, make([]byte, MaxBodyToAgent+1)) }, ErrTooLarge},
		{"agent's body too large", func() error { return ag.Send(MsgPing, 1, make([]byte, MaxBodyToSwitch+1)) }, ErrTooLarge},
		{"invalid state", func() error { return sw.SendHandoff(1, &badState, nil) }, ErrMalformed},
		{"request over the window", func() error { return sw.SendHandoff(1, &overWindow, make([]byte, MaxRequest+1)) }, ErrTooLarge},
		{"request of the largest window", func() error { return sw.SendHandoff(1, &window, make([]byte, MaxRequest)) }, nil},
		{"largest body", func() error { return sw.Send(MsgPing, 1, make([]byte, MaxBodyToAgent)) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(sw.Pending())
			if err := tt.send(); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if tt.want != nil && len(sw.Pending()) != before {
				t.Errorf("failed send queued %d bytes", len(sw.Pending())-before)
			}
		})
	}
	// The largest frame is accepted by the receiver.
	if _, err := pump(sw, ag); err != nil {
		t.Errorf("receiving the largest frame: %v", err)
	}
}

func TestSessionReceiveErrors(t *testing.T) {
	be := binary.BigEndian
	// frame returns one switch→agent frame from a fresh ready pair, its agent
	// end, and the frame after edit.
	frame := func(t *testing.T, edit func(f []byte) []byte) (*Session, []byte) {
		sw, ag := readyPair(t)
		st := testState(4)
		if err := sw.SendHandoff(1, &st, []byte("GET ")); err != nil {
			t.Fatal(err)
		}
		f := append([]byte(nil), sw.Pending()...)
		return ag, edit(f)
	}
	flip := func(i int) func([]byte) []byte {
		return func(f []byte) []byte {
			if i < 0 {
				i += len(f)
			}
			f[i] ^= 0x10
			return f
		}
	}
	tests := []struct {
		name string
		edit func(f []byte) []byte
		want error
	}{
		{"intact", func(f []byte) []byte { return f }, nil},
		{"next version", func(f []byte) []byte { f[hdrVersion] = Version + 1; return f }, ErrVersion},
		{"version 1 (RTT in HANDOFF)", func(f []byte) []byte { f[hdrVersion] = 1; return f }, ErrVersion},
		{"version 0", func(f []byte) []byte { f[hdrVersion] = 0; return f }, ErrVersion},
		{"flags set", func(f []byte) []byte { f[hdrFlags+1] = 1; return f }, ErrVersion},
		{"type 0", func(f []byte) []byte { f[hdrType] = 0; return f }, ErrType},
		{"type 13", func(f []byte) []byte { f[hdrType] = 13; return f }, ErrType},
		{"type changed to PING", func(f []byte) []byte { f[hdrType] = byte(MsgPing); return f }, ErrMAC},
		{"id changed", flip(hdrID + 7), ErrMAC},
		{"body byte changed", flip(HeaderLen + hoRcvNxt), ErrMAC},
		{"request byte changed", flip(HeaderLen + HandoffFixedLen), ErrMAC},
		{"MAC byte changed", flip(-1), ErrMAC},
		{"length over the limit", func(f []byte) []byte { be.PutUint32(f[hdrLen:], MaxBodyToAgent+1); return f }, ErrTooLarge},
		{"length shortened", func(f []byte) []byte { be.PutUint32(f[hdrLen:], HandoffFixedLen); return f }, ErrMAC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ag, f := frame(t, tt.edit)
			n, _, ok, err := ag.Receive(f)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Receive: %v, want %v", err, tt.want)
			}
			if err != nil {
				if n != 0 || ok {
					t.Errorf("failed Receive returned consumed %d, ok %v", n, ok)
				}
				// The failure is sticky.
				if _, _, _, err2 := ag.Receive(f); err2 != err {
					t.Errorf("second Receive: %v, want %v", err2, err)
				}
				if err2 := ag.Send(MsgOK, 1, nil); err2 != err {
					t.Errorf("Send after failure: %v, want %v", err2, err)
				}
			}
		})
	}
}

// TestSessionSendErrTruncates checks that a long ERR reason is cut to fit
// the agent→switch limit, at a UTF-8 boundary, rather than failing the send.
func TestSessionSendErrTruncates(t *testing.T) {
	sw, ag := readyPair(t)
	reason := "x" + strings.Repeat("é", 1<<10) // runes of 2 bytes from offset 1
	if err := ag.SendErr(7, ErrCodeRecreate, reason); err != nil {
		t.Fatalf("SendErr: %v", err)
	}
	msgs, err := pump(ag, sw)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("switch received %d messages, %v; want the ERR", len(msgs), err)
	}
	code, got, err := DecodeErrBody(msgs[0].Body)
	if err != nil || code != ErrCodeRecreate {
		t.Fatalf("DecodeErrBody: code %d, %v", code, err)
	}
	// The limit leaves MaxBodyToSwitch-2 bytes of reason, which would end
	// inside a rune: one byte less.
	if want := reason[:MaxBodyToSwitch-3]; string(got) != want {
		t.Errorf("reason is %d bytes, want the first %d", len(got), len(want))
	}
}

// TestSessionReceiveHeader checks that Receive refuses a frame by its
// header alone, before any of its body has arrived: a body over the limit of
// its direction, or a type this end never receives.
func TestSessionReceiveHeader(t *testing.T) {
	header := func(typ MsgType, blen uint32) []byte {
		h := make([]byte, HeaderLen)
		h[hdrVersion], h[hdrType] = Version, byte(typ)
		binary.BigEndian.PutUint32(h[hdrLen:], blen)
		return h
	}
	readySwitch := func() *Session { sw, _ := readyPair(t); return sw }
	readyAgent := func() *Session { _, ag := readyPair(t); return ag }
	freshSwitch := func() *Session { return NewSwitchSession(testSecret, nil) }
	freshAgent := func() *Session { return NewAgentSession(testSecret, nil) }
	tests := []struct {
		name string
		s    func() *Session
		in   []byte
		want error // nil: waits for the body
	}{
		{"HANDOFF over the limit", readyAgent, header(MsgHandoff, MaxBodyToAgent+1), ErrTooLarge},
		{"HANDOFF at the limit", readyAgent, header(MsgHandoff, MaxBodyToAgent), nil},
		{"LOAD over the limit", readySwitch, header(MsgLoad, MaxBodyToSwitch+1), ErrTooLarge},
		{"ERR at the limit", readySwitch, header(MsgErr, MaxBodyToSwitch), nil},
		{"PING to the switch over its limit", readySwitch, header(MsgPing, MaxBodyToSwitch+1), ErrTooLarge},
		{"HELLO over the limit", freshSwitch, header(MsgHello, MaxBodyToSwitch+1), ErrTooLarge},
		{"OK to the agent", readyAgent, header(MsgOK, 0), ErrType},
		{"GOAWAY to the agent", readyAgent, header(MsgGoAway, 0), ErrType},
		{"OWNERS to the agent", readyAgent, header(MsgOwners, OwnerLen), ErrType},
		{"LOOKUP to the switch", readySwitch, header(MsgLookup, lookupFixedLen+LookupEntryLen), ErrType},
		{"HELLO to the agent", freshAgent, header(MsgHello, nonceLen), ErrType},
		{"HANDOFF to the switch", readySwitch, header(MsgHandoff, HandoffFixedLen), ErrType},
		{"AUTH to the switch", freshSwitch, header(MsgAuth, nonceLen+proofLen), ErrType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _, ok, err := tt.s().Receive(tt.in)
			if !errors.Is(err, tt.want) || n != 0 || ok {
				t.Errorf("Receive(header) = consumed %d, ok %v, %v; want 0, false, %v", n, ok, err, tt.want)
			}
		})
	}
}

// TestSessionReplay checks replayed, reordered and reflected messages.
func TestSessionReplay(t *testing.T) {
	t.Run("replayed", func(t *testing.T) {
		sw, ag := readyPair(t)
		if err := sw.Send(MsgPing, 1, nil); err != nil {
			t.Fatal(err)
		}
		f := append([]byte(nil), sw.Pending()...)
		if _, _, ok, err := ag.Receive(f); !ok || err != nil {
			t.Fatalf("first copy: ok %v, err %v", ok, err)
		}
		if _, _, _, err := ag.Receive(f); !errors.Is(err, ErrMAC) {
			t.Errorf("replay: %v, want ErrMAC", err)
		}
	})
	t.Run("reordered", func(t *testing.T) {
		sw, ag := readyPair(t)
		if err := sw.Send(MsgPing, 1, nil); err != nil {
			t.Fatal(err)
		}
		first := len(sw.Pending())
		if err := sw.Send(MsgPing, 2, nil); err != nil {
			t.Fatal(err)
		}
		second := sw.Pending()[first:]
		if _, _, _, err := ag.Receive(second); !errors.Is(err, ErrMAC) {
			t.Errorf("second message first: %v, want ErrMAC", err)
		}
	})
	t.Run("dropped", func(t *testing.T) {
		sw, ag := readyPair(t)
		if err := sw.Send(MsgPing, 1, nil); err != nil {
			t.Fatal(err)
		}
		sw.Written(len(sw.Pending())) // lost
		if err := sw.Send(MsgPing, 2, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := pump(sw, ag); !errors.Is(err, ErrMAC) {
			t.Errorf("after a lost message: %v, want ErrMAC", err)
		}
	})
	t.Run("reflected", func(t *testing.T) {
		_, ag := readyPair(t)
		if err := ag.Send(MsgPing, 1, nil); err != nil {
			t.Fatal(err)
		}
		// The agent's own PING (counter 0) fed back to it: the direction
		// byte differs, so the MAC fails.
		if _, _, _, err := ag.Receive(ag.Pending()); !errors.Is(err, ErrMAC) {
			t.Errorf("reflected: %v, want ErrMAC", err)
		}
	})
	t.Run("handshake replayed after ready", func(t *testing.T) {
		sw := NewSwitchSession(testSecret, constRand(2))
		ag := NewAgentSession(testSecret, constRand(1))
		hello := append([]byte(nil), ag.Pending()...)
		if err := handshake(sw, ag); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := sw.Receive(hello); !errors.Is(err, ErrMAC) {
			t.Errorf("HELLO after ready: %v, want ErrMAC", err)
		}
	})
}

func TestSessionBeforeAuth(t *testing.T) {
	// A frame with a zero MAC, as an attacker without the key would send.
	raw := func(typ MsgType, body []byte) []byte {
		f := make([]byte, HeaderLen, HeaderLen+len(body)+MACLen)
		f[hdrVersion], f[hdrType] = Version, byte(typ)
		binary.BigEndian.PutUint32(f[hdrLen:], uint32(len(body)))
		f = append(f, body...)
		return append(f, make([]byte, MACLen)...)
	}
	st := testState(0)
	tests := []struct {
		name string
		s    func() *Session
		in   []byte
		want error
	}{
		{"HANDOFF to agent before AUTH", func() *Session { return NewAgentSession(testSecret, nil) },
			raw(MsgHandoff, AppendHandoffBody(nil, &st, nil)), ErrState},
		{"OK to switch before HELLO", func() *Session { return NewSwitchSession(testSecret, nil) }, raw(MsgOK, nil), ErrState},
		{"AUTH_OK to switch before HELLO", func() *Session { return NewSwitchSession(testSecret, nil) },
			raw(MsgAuthOK, make([]byte, proofLen)), ErrState},
		{"HELLO to agent", func() *Session { return NewAgentSession(testSecret, nil) }, raw(MsgHello, make([]byte, nonceLen)), ErrType},
		{"HELLO short", func() *Session { return NewSwitchSession(testSecret, nil) }, raw(MsgHello, make([]byte, nonceLen-1)), ErrTruncated},
		{"HELLO long", func() *Session { return NewSwitchSession(testSecret, nil) }, raw(MsgHello, make([]byte, nonceLen+1)), ErrMalformed},
		{"HELLO with a MAC", func() *Session { return NewSwitchSession(testSecret, nil) },
			append(raw(MsgHello, make([]byte, nonceLen))[:HeaderLen+nonceLen], bytes.Repeat([]byte{1}, MACLen)...), ErrMAC},
		{"AUTH with a zero proof", func() *Session { return NewAgentSession(testSecret, nil) },
			raw(MsgAuth, make([]byte, nonceLen+proofLen)), ErrAuth},
		{"AUTH short", func() *Session { return NewAgentSession(testSecret, nil) }, raw(MsgAuth, make([]byte, nonceLen)), ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s()
			if _, _, _, err := s.Receive(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("Receive: %v, want %v", err, tt.want)
			}
			if s.Ready() {
				t.Error("session became ready")
			}
		})
	}
}

// TestSessionStream feeds frames in pieces, as reads from a stream return
// them, and writes Pending in pieces.
func TestSessionStream(t *testing.T) {
	sw, ag := readyPair(t)
	st := testState(300)
	req := bytes.Repeat([]byte{'r'}, 300)
	for id := uint64(1); id <= 3; id++ {
		if err := sw.SendHandoff(id, &st, req); err != nil {
			t.Fatal(err)
		}
	}
	var stream []byte
	for p := sw.Pending(); len(p) > 0; p = sw.Pending() {
		n := min(7, len(p))
		stream = append(stream, p[:n]...)
		sw.Written(n)
	}
	// Offer the agent one more byte at a time; it must consume nothing until
	// a frame is complete, then exactly that frame.
	var in []byte
	var ids []uint64
	for _, c := range stream {
		in = append(in, c)
		n, m, ok, err := ag.Receive(in)
		if err != nil {
			t.Fatalf("Receive after %d bytes: %v", len(in), err)
		}
		if n == 0 {
			continue
		}
		if !ok || n != len(in) {
			t.Fatalf("Receive consumed %d of %d bytes, ok %v", n, len(in), ok)
		}
		ids = append(ids, m.ID)
		in = in[:0]
	}
	if diff := cmp.Diff([]uint64{1, 2, 3}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
}

func TestSessionRandFailure(t *testing.T) {
	ag := NewAgentSession(testSecret, iotest.ErrReader(io.ErrClosedPipe))
	if len(ag.Pending()) != 0 {
		t.Error("HELLO queued without a nonce")
	}
	if _, _, _, err := ag.Receive(nil); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Receive: %v, want the nonce error", err)
	}
}

// TestSessionNoAllocs checks the switch's steady state: HANDOFF out, OK back.
func TestSessionNoAllocs(t *testing.T) {
	sw, ag := readyPair(t)
	st := testState(512)
	req := bytes.Repeat([]byte{'x'}, 512)
	var got ConnState
	id := uint64(0)
	allocs := testing.AllocsPerRun(200, func() {
		id++
		handoffRoundTrip(t, sw, ag, id, &st, req, &got)
	})
	if allocs != 0 {
		t.Errorf("SendHandoff+Receive+Send+Receive: %v allocs, want 0", allocs)
	}
}

func handoffRoundTrip(t testing.TB, sw, ag *Session, id uint64, st *ConnState, req []byte, got *ConnState) {
	if err := sw.SendHandoff(id, st, req); err != nil {
		t.Fatal(err)
	}
	p := sw.Pending()
	n, m, ok, err := ag.Receive(p)
	if err != nil || !ok || n != len(p) {
		t.Fatalf("agent Receive: %d of %d, %v, %v", n, len(p), ok, err)
	}
	if _, err := DecodeHandoffBody(m.Body, got); err != nil {
		t.Fatal(err)
	}
	sw.Written(n)
	if err := ag.Send(MsgOK, m.ID, nil); err != nil {
		t.Fatal(err)
	}
	p = ag.Pending()
	n, m, ok, err = sw.Receive(p)
	if err != nil || !ok || m.ID != id {
		t.Fatalf("switch Receive: %v, %v, id %d", ok, err, m.ID)
	}
	ag.Written(n)
}

func BenchmarkHandoffRoundTrip(b *testing.B) {
	sw, ag := readyPair(b)
	st := testState(512)
	req := bytes.Repeat([]byte{'x'}, 512)
	var got ConnState
	b.ReportAllocs()
	id := uint64(0)
	for b.Loop() {
		id++
		handoffRoundTrip(b, sw, ag, id, &st, req, &got)
	}
}

func BenchmarkHandshake(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := handshake(NewSwitchSession(testSecret, nil), NewAgentSession(testSecret, nil)); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzSessionReceive feeds arbitrary bytes to an agent session, fresh or
// after the handshake (fixed nonces, so seeds can hold valid frames). It must
// never panic, never consume more than it was given, and stay failed once it
// failed.
func FuzzSessionReceive(f *testing.F) {
	sw, _ := readyPair(f)
	st := testState(4)
	if err := sw.SendHandoff(1, &st, []byte("GET ")); err != nil {
		f.Fatal(err)
	}
	if err := sw.Send(MsgPing, 2, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte(nil), sw.Pending()...), true)
	f.Add(NewAgentSession(testSecret, constRand(1)).Pending(), false)
	f.Fuzz(func(t *testing.T, in []byte, ready bool) {
		ag := NewAgentSession(testSecret, constRand(1))
		if ready {
			sw := NewSwitchSession(testSecret, constRand(2))
			if err := handshake(sw, ag); err != nil {
				t.Fatal(err)
			}
		}
		for len(in) > 0 {
			n, m, ok, err := ag.Receive(in)
			if err != nil {
				if _, _, _, err2 := ag.Receive(in); err2 != err {
					t.Fatalf("error not sticky: %v then %v", err, err2)
				}
				return
			}
			if n == 0 {
				return
			}
			if n > len(in) || n < HeaderLen+MACLen {
				t.Fatalf("consumed %d of %d bytes", n, len(in))
			}
			if ok {
				if m.Type != MsgHandoff && m.Type != MsgPing && m.Type != MsgPong {
					t.Fatalf("agent accepted %v", m.Type)
				}
				if len(m.Body) != n-HeaderLen-MACLen {
					t.Fatalf("body %d bytes in a %d-byte frame", len(m.Body), n)
				}
			}
			in = in[n:]
		}
	})
}
