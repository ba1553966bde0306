package shard

import (
	"encoding/binary"
	"testing"
	"time"

	"webswitch/handoff"
	"webswitch/ring"
	"webswitch/tcpfsm/header"
)

// FuzzShard ops. A script is a sequence of ops: an op byte, and for the
// frame ops a big-endian 16-bit length and that many bytes of Ethernet
// frame, as a client would send to the switch.
const (
	opFrame      = 0 // the frame as it is
	opFrameFixed = 1 // the frame with its IPv4 header and TCP checksums made right, if it has them
	opAdvance    = 2 // the clock moves by op>>2 times 100 ms, and the timers run
	opAnswer     = 3 // every agent answers the handoffs and LOOKUPs it has: OK if op&4, else ERR; OWNERS claiming every connection if op&8 (be1 ESTABLISHED, be2 FIN_WAIT1), else none
)

func appendFrameOp(script []byte, op byte, frame []byte) []byte {
	script = append(script, op)
	script = binary.BigEndian.AppendUint16(script, uint16(len(frame)))
	return append(script, frame...)
}

// seedScript records a scripted session as a FuzzShard script.
func seedScript(f *testing.F, session func(h *harness, record func(op byte))) []byte {
	h := newHarness(f)
	var script []byte
	h.script = &script
	session(h, func(op byte) { script = append(script, op) })
	return script
}

// FuzzShard feeds a shard any sequence of client frames, clock moves and
// agent answers, and checks that it never panics, that its flow count
// always matches its table, and that once the clock has run past every
// timeout no flow is left: nothing the client sends can leave a flow stuck.
func FuzzShard(f *testing.F) {
	const req = "GET / HTTP/1.1\r\nHost: both.example\r\n\r\n"
	f.Add(seedScript(f, func(h *harness, record func(byte)) { // a whole connection
		c := h.client(40000)
		c.handshake()
		c.data(header.FlagPSH, req[:10])
		c.data(header.FlagPSH, req[10:])
		record(opAnswer | 4)
		c.data(0, "")
		c.data(header.FlagFIN, "")
		record(opAdvance | 20<<2)
	}))
	f.Add(seedScript(f, func(h *harness, record func(byte)) { // refused everywhere, then a malformed request
		c := h.client(40001)
		c.handshake()
		c.data(header.FlagPSH, req)
		record(opAnswer)
		record(opAnswer)
		d := h.client(40002)
		d.handshake()
		d.data(header.FlagPSH, "GET / HTTP/1.1\r\nHost\r\n\r\n")
		record(opAdvance | 5<<2)
	}))
	f.Add(seedScript(f, func(h *harness, record func(byte)) { // recovered after a restart, then unknown to all
		c := h.client(40003)
		spliceElsewhere(c)
		c.data(0, "")
		record(opAdvance)
		record(opAnswer | 4 | 8)
		record(opAdvance)
		c.data(header.FlagFIN, "")
		d := h.client(40004)
		spliceElsewhere(d)
		d.data(header.FlagPSH, req)
		record(opAdvance)
		record(opAnswer | 4)
		record(opAdvance | 5<<2)
	}))
	f.Fuzz(func(t *testing.T, script []byte) {
		h := newHarness(t)
		raw := make([]byte, ring.VnetHdrLen+0xFFFF)
		for len(script) > 0 {
			op := script[0]
			script = script[1:]
			switch op & 3 {
			case opFrame, opFrameFixed:
				if len(script) < 2 {
					return
				}
				n := min(int(binary.BigEndian.Uint16(script)), len(script)-2)
				frame := raw[ring.VnetHdrLen : ring.VnetHdrLen+n]
				copy(frame, script[2:2+n])
				script = script[2+n:]
				if op&3 == opFrameFixed {
					fixChecksums(frame)
				}
				clear(raw[:ring.VnetHdrLen])
				h.s.frame(&ring.Frame{Data: frame, Vnet: raw[:ring.VnetHdrLen], Raw: raw[:ring.VnetHdrLen+n], Len: uint32(n)})
				h.tx.take()
			case opAdvance:
				h.advance(time.Duration(op>>2) * 100 * time.Millisecond)
			case opAnswer:
				h.answerAll(op&4 != 0, op&8 != 0)
			}
			h.checkFlows()
		}
		// Run the clock past every timeout (the longest is the idle
		// timeout, 300 s), answering nothing more.
		for range 40 {
			if h.s.C.ActiveFlows.Load() == 0 {
				break
			}
			h.advance(10 * time.Second)
			h.tx.take()
			h.checkFlows()
		}
		if n := h.s.C.ActiveFlows.Load(); n != 0 {
			t.Fatalf("%d flows left 400 s after the last frame", n)
		}
	})
}

// fixChecksums makes the IPv4 header checksum and the TCP checksum of an
// Ethernet frame right, when its lengths let it.
func fixChecksums(frame []byte) {
	if len(frame) < header.EthernetLen+header.IPv4MinLen {
		return
	}
	ip := header.IPv4(frame[header.EthernetLen:])
	hl, total := ip.HeaderLen(), ip.TotalLen()
	if hl < header.IPv4MinLen || total < hl+header.TCPMinLen || total > len(ip) {
		return
	}
	ip.SetChecksum()
	header.TCP(ip[hl:total]).SetChecksum(ip.Src(), ip.Dst())
}

// answerAll makes every agent answer the HANDOFFs and LOOKUPs it
// received: ERR to all unless ok; OWNERS claiming every connection if
// claim (be1's sockets ESTABLISHED, the others' in FIN_WAIT1), else none.
func (h *harness) answerAll(ok, claim bool) {
	h.pump()
	for b, a := range append(h.agents[:len(h.agents):len(h.agents)], h.old...) {
		for _, m := range a.Msgs {
			var err error
			switch {
			case !ok:
				err = a.Sess.SendErr(m.ID, handoff.ErrCodeRecreate, "fuzz")
			case m.Type == handoff.MsgHandoff:
				err = a.Sess.Send(handoff.MsgOK, m.ID, nil)
			case m.Type == handoff.MsgLookup:
				o := handoff.Owner{}
				if claim {
					o = map[bool]handoff.Owner{true: established, false: {State: handoff.SockFinWait1, IdleMS: 1}}[b == 0]
				}
				var body []byte
				n := int(m.Body[1])
				for range n {
					body = handoff.AppendOwner(body, o)
				}
				err = a.Sess.Send(handoff.MsgOwners, m.ID, body)
			}
			if err != nil {
				h.t.Fatal(err)
			}
		}
		a.Reset()
	}
	h.pump()
	h.tx.take()
}

// checkFlows checks the shard's flow counters against its table.
func (h *harness) checkFlows() {
	h.t.Helper()
	active, spliced := h.s.C.ActiveFlows.Load(), h.s.C.SplicedFlows.Load()
	if active != int64(len(h.s.tab.index)) || spliced < 0 || spliced > active {
		h.t.Fatalf("active flows %d, spliced %d, table %d", active, spliced, len(h.s.tab.index))
	}
}
