package tcpfsm

import (
	"time"

	"webswitch/internal/mono"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

// Config holds the parameters shared by all connections of a shard.
type Config struct {
	MSS        uint16        // MSS the switch advertises in its SYN-ACK
	WScale     uint8         // window scale the switch advertises (and the back-end inherits)
	Window     int           // bytes the switch buffers per connection before the handoff
	RTOInitial time.Duration // first retransmission timeout of the switch's own data
	RTOMax     time.Duration // retransmission timeout ceiling
	MaxRetries int           // retransmissions before the connection is dropped
	Linger     time.Duration // how long to wait for the client's FIN after ours is acknowledged
}

// BufferSize is the capacity of the request buffer a Conn needs: the window
// plus room for the rounding of a scaled window.
func (cfg *Config) BufferSize() int { return cfg.Window + 1<<cfg.WScale }

// Segment is a received TCP segment, already checked by the caller.
type Segment struct {
	Seq, Ack seqnum.Value
	Flags    uint8
	Window   uint16 // raw window field
	Payload  []byte
}

// Seg is a segment the switch sends to the client.
type Seg struct {
	Seq, Ack seqnum.Value
	Flags    uint8
	Window   uint16
	Payload  []byte            // aliases the response given to Respond
	Syn      header.SynOptions // with FlagSYN: the options to put in the SYN-ACK
	MSS      uint16            // with FlagSYN: the switch's MSS
	WScale   uint8             // with FlagSYN: the switch's window scale
}

// Out collects what one call produced. Reset it before each call.
type Out struct {
	Segs      [4]Seg
	N         int
	Delivered bool // new in-order request bytes: see Conn.Request
	PeerFIN   bool // the client closed its side
	Free      bool // the connection is over
}

// Reset empties o.
func (o *Out) Reset() { *o = Out{} }

func (o *Out) add() *Seg {
	if o.N == len(o.Segs) {
		return nil
	}
	s := &o.Segs[o.N]
	*s = Seg{}
	o.N++
	return s
}

// span is a received range of bytes beyond rcvNxt.
type span struct{ start, end seqnum.Value }

const maxOOO = 4

// Conn is one connection the switch owns, from the handshake's last ACK
// until the handoff or the end of the switch's own response.
type Conn struct {
	cfg   *Config
	state State

	iss, irs seqnum.Value
	opts     header.SynOptions // the client's options, from the cookie

	rcvNxt  seqnum.Value
	rcvEdge seqnum.Value // right edge of the window the switch offers
	buf     []byte       // request bytes: len = in order, cap = BufferSize
	ooo     [maxOOO]span
	nooo    int
	finRcvd bool

	sndUna, sndNxt seqnum.Value
	sndWnd         seqnum.Size
	sndWl1, sndWl2 seqnum.Value
	resp           []byte
	finSent        bool
	rto            time.Duration
	rtxAt          mono.Time
	retries        int
	lingerAt       mono.Time
}

// SynAck fills s with the stateless SYN-ACK answering a SYN of t with
// sequence number isn and options o.
func (cfg *Config) SynAck(now mono.Time, k *Cookies, t *Tuple, isn seqnum.Value, o *header.SynOptions, s *Seg) {
	*s = Seg{
		Seq:    k.Make(now, t, isn, o),
		Ack:    isn.Add(1),
		Flags:  header.FlagSYN | header.FlagACK,
		Window: uint16(min(cfg.Window, 0xFFFF)),
		Syn:    *o,
		MSS:    cfg.MSS,
		WScale: cfg.WScale,
	}
}

// Accept checks the cookie of seg, the first non-SYN segment of a connection
// the switch has no state for. If it is valid, it initialises c from it (buf
// is the request buffer, of capacity cfg.BufferSize()) and processes the
// segment as Input does; ok is false otherwise, and c is untouched.
func (c *Conn) Accept(now mono.Time, cfg *Config, k *Cookies, t *Tuple, seg *Segment, buf []byte, out *Out) bool {
	if seg.Flags&(header.FlagACK|header.FlagSYN|header.FlagRST) != header.FlagACK {
		return false
	}
	var o header.SynOptions
	irs := seg.Seq - 1
	iss := seg.Ack - 1
	if !k.Check(now, t, irs, iss, &o) {
		return false
	}
	*c = Conn{
		cfg:     cfg,
		state:   RequestWait,
		iss:     iss,
		irs:     irs,
		opts:    o,
		rcvNxt:  irs + 1,
		rcvEdge: irs.Add(1 + seqnum.Size(cfg.Window)),
		buf:     buf[:0],
		sndUna:  iss + 1,
		sndNxt:  iss + 1,
		sndWl1:  seg.Seq,
		sndWl2:  seg.Ack,
		sndWnd:  c.scaled(seg.Window, &o),
		rto:     cfg.RTOInitial,
	}
	c.Input(now, seg, out)
	return true
}

func (c *Conn) scaled(w uint16, o *header.SynOptions) seqnum.Size {
	if o.WScaleOK {
		return seqnum.Size(w) << o.WScale
	}
	return seqnum.Size(w)
}

// State returns the connection's state.
func (c *Conn) State() State { return c.state }

// Request returns the request bytes received in order so far. The slice is
// valid until the Conn is reused.
func (c *Conn) Request() []byte { return c.buf }

// Input processes a segment from the client.
func (c *Conn) Input(now mono.Time, seg *Segment, out *Out) {
	switch c.state {
	case RequestWait, Responding, FinWait:
	default:
		return
	}
	if seg.Flags&header.FlagRST != 0 {
		// RFC 5961: only a reset in the window is believed.
		if seg.Seq.InRange(c.rcvNxt, c.rcvEdge.Add(1)) {
			c.close(out)
		}
		return
	}
	if seg.Flags&header.FlagSYN != 0 {
		c.sendAck(out) // a SYN on a synchronized connection: challenge ACK
		return
	}
	if seg.Flags&header.FlagACK == 0 {
		return
	}
	if c.sndNxt.LessThan(seg.Ack) {
		c.sendAck(out) // acknowledges something never sent
		return
	}
	c.processAck(now, seg, out)
	if c.state == Closed {
		return
	}
	c.receive(seg, out)
	if c.state == Responding || c.state == FinWait {
		c.output(now, out)
	}
}

func (c *Conn) processAck(now mono.Time, seg *Segment, out *Out) {
	if c.sndWl1.LessThan(seg.Seq) || c.sndWl1 == seg.Seq && c.sndWl2.LessThanEq(seg.Ack) {
		c.sndWnd = c.scaled(seg.Window, &c.opts)
		c.sndWl1, c.sndWl2 = seg.Seq, seg.Ack
	}
	if !c.sndUna.LessThan(seg.Ack) {
		return
	}
	c.sndUna = seg.Ack
	c.retries = 0
	c.rto = c.cfg.RTOInitial
	c.rtxAt = 0
	if c.sndUna != c.sndNxt {
		c.rtxAt = now.Add(c.rto)
		return
	}
	if c.finSent {
		if c.finRcvd {
			c.close(out)
			return
		}
		c.state = FinWait
		c.lingerAt = now.Add(c.cfg.Linger)
	}
}

// receive takes the data and FIN of seg.
func (c *Conn) receive(seg *Segment, out *Out) {
	n := seqnum.Size(len(seg.Payload))
	if seg.Flags&header.FlagFIN != 0 {
		n++
	}
	if n == 0 {
		return
	}
	if c.state != RequestWait {
		// The switch is closing: acknowledge and discard whatever comes in order.
		if seg.Seq == c.rcvNxt && !c.finRcvd {
			c.rcvNxt = c.rcvNxt.Add(n)
			if seg.Flags&header.FlagFIN != 0 {
				c.finRcvd = true
				out.PeerFIN = true
			}
		}
		if c.state == FinWait && c.finRcvd {
			c.sendAck(out)
			c.close(out)
			return
		}
		c.sendAck(out)
		return
	}
	limit := c.irs.Add(1 + seqnum.Size(cap(c.buf)))
	start, end := seg.Seq, seg.Seq.Add(seqnum.Size(len(seg.Payload)))
	data := seg.Payload
	if start.LessThan(c.rcvNxt) {
		if end.LessThanEq(c.rcvNxt) {
			data, end = nil, c.rcvNxt
		} else {
			data = data[c.rcvNxt-start:]
		}
		start = c.rcvNxt
	}
	if limit.LessThan(end) {
		if limit.LessThanEq(start) {
			data = nil
		} else {
			data = data[:limit-start]
		}
		end = limit
	}
	fin := seg.Flags&header.FlagFIN != 0 && end == seg.Seq.Add(seqnum.Size(len(seg.Payload)))
	if len(data) == 0 && !(fin && start == c.rcvNxt) {
		c.sendAck(out) // old, duplicate or beyond the window
		return
	}
	full := c.buf[:cap(c.buf)]
	copy(full[c.irs.Add(1).Size(start):], data)
	if start != c.rcvNxt {
		c.addOOO(start, end)
		c.sendAck(out) // out of order: duplicate ACK so the client repairs the gap
		return
	}
	c.rcvNxt = end
	c.mergeOOO()
	c.buf = c.buf[:c.irs.Add(1).Size(c.rcvNxt)]
	if len(data) > 0 {
		out.Delivered = true
	}
	if fin && c.nooo == 0 {
		c.rcvNxt++
		c.finRcvd = true
		out.PeerFIN = true
		c.sendAck(out)
	}
}

func (c *Conn) addOOO(start, end seqnum.Value) {
	for i := 0; i < c.nooo; i++ {
		s := &c.ooo[i]
		if !end.LessThan(s.start) && !s.end.LessThan(start) { // overlaps or touches
			if start.LessThan(s.start) {
				s.start = start
			}
			if s.end.LessThan(end) {
				s.end = end
			}
			return
		}
	}
	if c.nooo < maxOOO {
		c.ooo[c.nooo] = span{start, end}
		c.nooo++
	}
	// Otherwise the bytes are in the buffer but not remembered: the client
	// sends them again, which is correct if slow.
}

// mergeOOO advances rcvNxt over out-of-order spans that now join it.
func (c *Conn) mergeOOO() {
	for again := true; again; {
		again = false
		for i := 0; i < c.nooo; i++ {
			s := c.ooo[i]
			if s.start.LessThanEq(c.rcvNxt) {
				c.rcvNxt = seqnum.Max(c.rcvNxt, s.end)
				c.nooo--
				c.ooo[i] = c.ooo[c.nooo]
				again = true
				break
			}
		}
	}
}

// window returns the window field to advertise: the offered window rounded
// up to the scale unit, so that the right edge never moves left (the buffer
// has that unit as slack).
func (c *Conn) window() uint16 {
	var w seqnum.Size
	if c.rcvNxt.LessThan(c.rcvEdge) {
		w = c.rcvNxt.Size(c.rcvEdge)
	}
	if c.state != RequestWait {
		w = seqnum.Size(c.cfg.Window)
	}
	if !c.opts.WScaleOK {
		return uint16(min(w, 0xFFFF))
	}
	unit := seqnum.Size(1)<<c.cfg.WScale - 1
	return uint16(min((w+unit)>>c.cfg.WScale, 0xFFFF))
}

// RcvWnd returns the window the switch offers, in bytes, as the client may use it.
func (c *Conn) RcvWnd() uint32 {
	w := uint32(c.window())
	if c.opts.WScaleOK {
		w <<= c.cfg.WScale
	}
	return w
}

func (c *Conn) sendAck(out *Out) {
	if s := out.add(); s != nil {
		s.Seq, s.Ack, s.Flags, s.Window = c.sndNxt, c.rcvNxt, header.FlagACK, c.window()
	}
}

// Ack acknowledges the data received so far (the caller does it when the
// request head is not complete yet: a complete head is acknowledged by the
// back-end after the handoff).
func (c *Conn) Ack(out *Out) { c.sendAck(out) }

// StartHandoff marks the request complete and sent to an agent.
func (c *Conn) StartHandoff() { c.state = HandingOff }

// Respond makes the switch answer the client itself with resp (an HTTP error;
// nil for none) followed by FIN, retransmitted until acknowledged. It is used
// in RequestWait, or in HandingOff when the handoff failed.
func (c *Conn) Respond(now mono.Time, resp []byte, out *Out) {
	if c.state != RequestWait && c.state != HandingOff {
		return
	}
	c.state = Responding
	c.resp = resp
	c.output(now, out)
}

// output sends what the client's window allows of the response and FIN.
func (c *Conn) output(now mono.Time, out *Out) {
	if c.state != Responding {
		return
	}
	first := c.iss + 1
	end := first.Add(seqnum.Size(len(c.resp)))
	mss := seqnum.Size(min(c.opts.MSS, c.cfg.MSS))
	for c.sndNxt.LessThan(end) || !c.finSent {
		wndEnd := c.sndUna.Add(c.sndWnd)
		if !c.sndNxt.LessThan(wndEnd) && c.sndNxt.LessThan(end) {
			break // window full (zero-window probes come from the timer)
		}
		n := min(mss, c.sndNxt.Size(end), c.sndNxt.Size(wndEnd))
		if !c.sndNxt.LessThan(end) {
			n = 0
		}
		s := out.add()
		if s == nil {
			break
		}
		off := first.Size(c.sndNxt)
		s.Seq, s.Ack, s.Window = c.sndNxt, c.rcvNxt, c.window()
		s.Flags = header.FlagACK | header.FlagPSH
		s.Payload = c.resp[off : off+n]
		c.sndNxt = c.sndNxt.Add(n)
		if c.sndNxt == end {
			s.Flags |= header.FlagFIN
			c.sndNxt++
			c.finSent = true
		}
	}
	if c.rtxAt == 0 {
		c.rtxAt = now.Add(c.rto)
	}
}

// Deadline returns when Tick must next be called (0: no timer running).
func (c *Conn) Deadline() mono.Time {
	switch c.state {
	case Responding:
		return c.rtxAt
	case FinWait:
		return c.lingerAt
	}
	return 0
}

// Tick runs the connection's timers: retransmission of the switch's own
// response (from the first unacknowledged byte, with exponential backoff;
// a zero window gets a probe the same way) and the FinWait limit.
func (c *Conn) Tick(now mono.Time, out *Out) {
	switch c.state {
	case FinWait:
		if now >= c.lingerAt {
			c.close(out)
		}
	case Responding:
		if c.rtxAt == 0 || now < c.rtxAt {
			return
		}
		if c.retries >= c.cfg.MaxRetries {
			if s := out.add(); s != nil {
				s.Seq, s.Flags = c.sndNxt, header.FlagRST
			}
			c.close(out)
			return
		}
		c.retries++
		c.rto = min(2*c.rto, c.cfg.RTOMax)
		c.sndNxt = c.sndUna
		c.finSent = false
		wnd := c.sndWnd
		if wnd == 0 {
			c.sndWnd = 1 // probe one byte
		}
		c.rtxAt = 0
		c.output(now, out)
		c.sndWnd = wnd
	}
}

func (c *Conn) close(out *Out) {
	c.state = Closed
	out.Free = true
}

// Params are the connection's values that the back-end needs to re-create it.
type Params struct {
	ISS, IRS  seqnum.Value
	RcvNxt    seqnum.Value // after the request bytes; the FIN, if any, is not counted
	SndWnd    uint32
	RcvWnd    uint32
	Opts      header.SynOptions // the client's options (MSS from the cookie)
	RcvWScale uint8             // the switch's window scale
	// FIN: the client's FIN came right after the request (a half-close, as
	// in "send the request, then shutdown(SHUT_WR)"). The switch has
	// acknowledged it; a re-created socket cannot hold it, so the back-end
	// must be sent a FIN at RcvNxt once its socket exists.
	FIN bool
}

// Params returns the values for the handoff. Valid in HandingOff.
func (c *Conn) Params() Params {
	p := Params{
		ISS: c.iss, IRS: c.irs, RcvNxt: c.rcvNxt,
		SndWnd: uint32(c.sndWnd), RcvWnd: c.RcvWnd(),
		Opts: c.opts, RcvWScale: c.cfg.WScale, FIN: c.finRcvd,
	}
	if c.finRcvd {
		p.RcvNxt--
	}
	return p
}
