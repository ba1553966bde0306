package tcpfsm

import (
	"encoding/binary"
	"testing"
	"time"

	"webswitch/internal/mono"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

// FuzzConn drives a connection with segments decoded from the input (offset,
// flags, window, length, and timer ticks) and checks it never panics, never
// buffers more than its buffer holds, and never sends a segment beyond its
// response. testdata/fuzz/FuzzConn/c1b198d0e666fa0e is a crasher it found:
// an old segment carrying a FIN moved rcvNxt backwards.
func FuzzConn(f *testing.F) {
	f.Add([]byte{0, 0, 0x10, 1, 0, 8, 0, 0, 0, 8, 0x10, 1, 0, 8})
	f.Add([]byte{0, 20, 0x11, 0, 0, 3, 0xff, 0, 0, 0, 0x14, 0, 0, 0})
	f.Add([]byte{0, 0, 0x12, 0, 0, 0, 0xfe, 0, 0, 0, 0x10, 0, 16, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		k := testCookies()
		var s Seg
		o := header.SynOptions{MSS: 536, WScale: 3, WScaleOK: true}
		testCfg.SynAck(0, k, &testTuple, 1000, &o, &s)
		var c Conn
		var out Out
		payload := make([]byte, 1<<12)
		first := Segment{Seq: 1001, Ack: s.Seq + 1, Flags: header.FlagACK, Window: 100}
		if !c.Accept(0, &testCfg, k, &testTuple, &first, make([]byte, 0, testCfg.BufferSize()), &out) {
			t.Fatal("rejected")
		}
		now := mono.Time(0)
		resp := []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		for len(in) >= 7 {
			off := binary.BigEndian.Uint16(in[0:2])
			flags := in[2]
			wnd := binary.BigEndian.Uint16(in[3:5])
			n := int(binary.BigEndian.Uint16(in[5:7])) % len(payload)
			in = in[7:]
			out.Reset()
			switch {
			case flags == 0xFF:
				now = now.Add(time.Duration(off) * ms)
				c.Tick(now, &out)
			case flags == 0xFE:
				c.Respond(now, resp, &out)
			default:
				seg := Segment{Seq: seqnum.Value(1001 + int(off) - 1000), Ack: s.Seq + 1 + seqnum.Value(wnd%64), Flags: flags, Window: wnd, Payload: payload[:n]}
				c.Input(now, &seg, &out)
			}
			if len(c.Request()) > testCfg.BufferSize() {
				t.Fatalf("buffered %d bytes", len(c.Request()))
			}
			for _, sg := range out.Segs[:out.N] {
				if len(sg.Payload) > len(resp) {
					t.Fatalf("segment of %d bytes", len(sg.Payload))
				}
			}
			if c.State() == Closed {
				return
			}
		}
	})
}
