package l7

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// Limits of the ClientHello parser.
const (
	// DefaultMaxHello bounds the bytes of the records holding a ClientHello
	// (record headers included) when Reset is given max <= 0 (or Parse is
	// called on a zero ClientHello).
	DefaultMaxHello = 16 << 10
	// MaxHelloLimit is the largest bound accepted; Reset clamps larger
	// values to it.
	MaxHelloLimit = 1 << 20
	// MaxALPN is the number of ALPN protocol names a ClientHello keeps;
	// further names are checked and ignored.
	MaxALPN = 8
	// MaxExtensions is the number of extensions a ClientHello may carry;
	// a hello with more is TooLarge.
	MaxExtensions = 64
)

// Wire constants (RFC 8446, RFC 6066, RFC 7301).
const (
	recordHeaderLen     = 5
	recordTypeHandshake = 22
	maxRecordLen        = 1 << 14
	minRecordVersion    = 0x0301 // TLS 1.0; 0x0300 (SSLv3) is refused
	maxRecordVersion    = 0x0304
	handshakeHeaderLen  = 4
	typeClientHello     = 1
	randomLen           = 32
	maxSessionID        = 32
	maxHostName         = 255

	extServerName        = 0
	extALPN              = 16
	extPreSharedKey      = 41
	extSupportedVersions = 43
	hostNameType         = 0

	// fragCap holds every field a ClientHello keeps, for the case where
	// each of them crosses a record boundary.
	fragCap = maxHostName + maxSessionID + MaxALPN*255
)

// piece is a field of the hello: a span of the caller's buffer or, for a
// field that crosses a record boundary, of ClientHello.frag.
type piece struct {
	span
	copied bool
}

// ClientHello parses the first bytes a client sends on a TLS port: TLS
// records (content type 22, handshake), possibly several records and
// several segments, holding one ClientHello handshake message. Like
// [Request] it keeps offsets into the caller's buffer in fixed-size arrays,
// never allocates and holds no pointer to the buffer: accessors take the
// buffer that was parsed.
//
// The checks (RFC 8446 sections 4 and 5, RFC 6066, RFC 7301):
//
//   - Records: content type 22 only (an alert, change_cipher_spec or
//     application data before the hello is Malformed), version
//     0x0301..0x0304 (SSLv3's 0x0300 is Malformed), length 1..2^14. The
//     hello may be split across records and segments; it must end exactly
//     at the end of a record (another handshake message after it in the
//     same record is Malformed).
//   - Handshake: type client_hello (1). Records holding more than the
//     bound given to Reset, or a length that cannot fit in it, are
//     TooLarge, as soon as the record or handshake header says so.
//   - Body: legacy_version, random, legacy_session_id of at most 32
//     bytes, cipher suites (even length, at least one), compression
//     methods (at least one), and optionally the extensions, whose total
//     length must be exact. Every extension's length must lie within the
//     block; a type may appear only once; pre_shared_key must be last;
//     more than MaxExtensions is TooLarge.
//   - server_name: a non-empty list filling the extension exactly; entries
//     of other name types are skipped; the host_name must be non-empty, at
//     most 255 bytes, without NUL, and appear at most once.
//   - ALPN: a non-empty list of non-empty protocol names filling the
//     extension exactly.
//   - supported_versions: a non-empty list of 16-bit versions filling the
//     extension exactly.
//
// Malformed and TooLarge both mean the switch closes the connection: it
// has no TLS alert of its own to send.
//
// Slices returned by the accessors alias buf, except for a field that
// crosses a record boundary (only a client that fragments its hello does
// that): such a field is copied into the ClientHello itself, and its slice
// stays valid until the next Reset.
type ClientHello struct {
	status Status
	hdrN   uint8 // handshake header bytes seen (0..4)
	nALPN  uint8

	max    uint32
	scan   uint32 // next byte of buf not looked at
	recEnd uint32 // end of the current record, 0 before its header is read
	logEnd uint32 // handshake bytes in the records up to the current one
	need   uint32 // handshake header + length, once hdrN == 4

	legacy, maxVer uint16
	sid, sni       piece
	alpn           [MaxALPN]piece

	fragN uint16
	frag  [fragCap]byte
}

// Reset makes h ready for a new connection. max bounds the bytes of the
// records holding the ClientHello, record headers included; values <= 0
// mean DefaultMaxHello, values above MaxHelloLimit are clamped to it.
func (h *ClientHello) Reset(max int) {
	*h = ClientHello{max: uint32(limit(max, DefaultMaxHello, MaxHelloLimit))}
}

// LooksLikeTLS reports whether first, the first byte a client sent, starts
// a TLS handshake record (an HTTP request never starts with 0x16).
func LooksLikeTLS(first byte) bool { return first == recordTypeHandshake }

// Parse consumes the bytes of buf it has not seen yet. buf holds all the
// bytes received on the connection so far: between two calls it may only
// grow, its prefix unchanged. Record headers and the handshake header are
// checked as they arrive; the body of the hello is parsed once, when its
// last record is complete. Once Parse returns Done, Malformed or TooLarge,
// later calls return the same status. Bytes after the records holding the
// hello (TLS 1.3 early data) are not looked at: Len tells where they start.
//
// A buf shorter than the bytes already consumed breaks that contract and
// gives Malformed.
func (h *ClientHello) Parse(buf []byte) Status {
	if h.status > NeedMore {
		return h.status
	}
	if h.max == 0 {
		h.max = DefaultMaxHello
	}
	if len(buf) < int(h.scan) {
		h.status = Malformed
		return Malformed
	}
	h.status = h.records(buf)
	return h.status
}

// records walks the record layer from h.scan, in byte order, so that the
// result does not depend on how buf was segmented.
func (h *ClientHello) records(buf []byte) Status {
	for {
		if h.recEnd == 0 {
			if len(buf) < int(h.scan)+recordHeaderLen {
				return NeedMore
			}
			if st := h.recordHeader(buf[h.scan : h.scan+recordHeaderLen]); st != NeedMore {
				return st
			}
		}
		for h.hdrN < handshakeHeaderLen && h.scan < h.recEnd && int(h.scan) < len(buf) {
			if st := h.handshakeByte(buf[h.scan]); st != NeedMore {
				return st
			}
			h.scan++
		}
		if len(buf) < int(h.recEnd) {
			h.scan = uint32(len(buf))
			return NeedMore
		}
		h.scan = h.recEnd
		if h.hdrN == handshakeHeaderLen && h.logEnd == h.need {
			return h.body(buf)
		}
		h.recEnd = 0
	}
}

// recordHeader checks the header b of the record starting at h.scan.
func (h *ClientHello) recordHeader(b []byte) Status {
	version := binary.BigEndian.Uint16(b[1:])
	n := uint32(binary.BigEndian.Uint16(b[3:]))
	if b[0] != recordTypeHandshake || version < minRecordVersion || version > maxRecordVersion ||
		n == 0 || n > maxRecordLen {
		return Malformed
	}
	h.scan += recordHeaderLen
	h.recEnd = h.scan + n
	h.logEnd += n
	return h.bounds()
}

// handshakeByte takes one byte of the handshake header.
func (h *ClientHello) handshakeByte(c byte) Status {
	if h.hdrN == 0 {
		if c != typeClientHello {
			return Malformed
		}
	} else {
		h.need = h.need<<8 | uint32(c)
	}
	h.hdrN++
	if h.hdrN < handshakeHeaderLen {
		return NeedMore
	}
	h.need += handshakeHeaderLen
	return h.bounds()
}

// bounds checks the records seen so far against the handshake length, once
// known, and the fewest bytes the records can take against h.max.
func (h *ClientHello) bounds() Status {
	need := uint32(handshakeHeaderLen)
	if h.hdrN == handshakeHeaderLen {
		need = h.need
		if h.logEnd > need {
			return Malformed // the current record goes on after the hello
		}
	}
	least := h.recEnd
	if h.logEnd < need {
		least += recordHeaderLen + need - h.logEnd
	}
	if least > h.max {
		return TooLarge
	}
	return NeedMore
}

// body parses the handshake message, whose records are all in buf.
func (h *ClientHello) body(buf []byte) Status {
	r := hsReader{
		buf: buf,
		pos: recordHeaderLen,
		end: recordHeaderLen + int(binary.BigEndian.Uint16(buf[3:])),
		lim: int(h.need),
	}
	var legacy, n int
	var suites, comp, exts hsReader
	if !r.skip(handshakeHeaderLen) || !r.u16(&legacy) || !r.skip(randomLen) ||
		!r.u8(&n) || n > maxSessionID || !h.take(&r, n, &h.sid) ||
		!r.vec16(&suites) || suites.len() < 2 || suites.len()%2 != 0 ||
		!r.vec8(&comp) || comp.empty() {
		return Malformed
	}
	h.legacy = uint16(legacy)
	if r.empty() {
		return Done // no extensions (allowed before TLS 1.3)
	}
	if !r.vec16(&exts) || !r.empty() {
		return Malformed
	}
	return h.extensions(&exts)
}

// extensions walks the extension block.
func (h *ClientHello) extensions(r *hsReader) Status {
	var seen [MaxExtensions]uint16
	n := 0
	for !r.empty() {
		var typ int
		var data hsReader
		if !r.u16(&typ) || !r.vec16(&data) || slices.Contains(seen[:n], uint16(typ)) {
			return Malformed
		}
		if n == MaxExtensions {
			return TooLarge
		}
		seen[n] = uint16(typ)
		n++
		ok := true
		switch typ {
		case extServerName:
			ok = h.serverName(&data)
		case extALPN:
			ok = h.protocols(&data)
		case extSupportedVersions:
			ok = h.versions(&data)
		case extPreSharedKey:
			ok = r.empty()
		}
		if !ok {
			return Malformed
		}
	}
	return Done
}

// serverName parses the server_name extension data.
func (h *ClientHello) serverName(r *hsReader) bool {
	var list hsReader
	if !r.vec16(&list) || !r.empty() || list.empty() {
		return false
	}
	for !list.empty() {
		var typ, n int
		if !list.u8(&typ) || !list.u16(&n) {
			return false
		}
		if typ != hostNameType {
			if !list.skip(n) {
				return false
			}
			continue
		}
		if h.sni.end != 0 || n == 0 || n > maxHostName || !h.take(&list, n, &h.sni) ||
			bytes.IndexByte(h.field(r.buf, h.sni), 0) >= 0 {
			return false
		}
	}
	return true
}

// protocols parses the ALPN extension data.
func (h *ClientHello) protocols(r *hsReader) bool {
	var list hsReader
	if !r.vec16(&list) || !r.empty() || list.empty() {
		return false
	}
	for !list.empty() {
		var n int
		if !list.u8(&n) || n == 0 {
			return false
		}
		if h.nALPN == MaxALPN {
			if !list.skip(n) {
				return false
			}
			continue
		}
		if !h.take(&list, n, &h.alpn[h.nALPN]) {
			return false
		}
		h.nALPN++
	}
	return true
}

// versions parses the supported_versions extension data.
func (h *ClientHello) versions(r *hsReader) bool {
	var list hsReader
	if !r.vec8(&list) || !r.empty() || list.empty() || list.len()%2 != 0 {
		return false
	}
	for !list.empty() {
		var v int
		list.u16(&v)
		if !isGREASE(v) && v > int(h.maxVer) {
			h.maxVer = uint16(v)
		}
	}
	return true
}

// isGREASE reports whether v is one of the reserved values 0x?A?A of RFC
// 8701, which clients offer at random to keep servers tolerant.
func isGREASE(v int) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// take reads the next n bytes of r as a field: a span of buf when they lie
// in one record, otherwise a copy in h.frag. The fields kept are bounded
// so that h.frag always has room.
func (h *ClientHello) take(r *hsReader, n int, p *piece) bool {
	if n > r.len() {
		return false
	}
	if n == 0 {
		*p = piece{}
		return true
	}
	r.enter()
	if r.pos+n <= r.end {
		*p = piece{span: span{uint32(r.pos), uint32(r.pos + n)}}
		return r.skip(n)
	}
	start := int(h.fragN)
	for i := start; i < start+n; {
		r.enter()
		k := copy(h.frag[i:start+n], r.buf[r.pos:r.end])
		r.pos += k
		r.off += k
		i += k
	}
	h.fragN += uint16(n)
	*p = piece{span: span{uint32(start), uint32(start + n)}, copied: true}
	return true
}

// field returns the bytes of p, nil when it is empty.
func (h *ClientHello) field(buf []byte, p piece) []byte {
	switch {
	case p.end == p.off:
		return nil
	case p.copied:
		return p.of(h.frag[:])
	}
	return p.of(buf)
}

// Len returns the bytes of buf taken by the records holding the
// ClientHello. It is valid after Done.
func (h *ClientHello) Len() int { return int(h.scan) }

// SNI returns the host_name of the server_name extension, as sent (no case
// folding, no IDNA), and nil when there is none.
func (h *ClientHello) SNI(buf []byte) []byte { return h.field(buf, h.sni) }

// SessionID returns the legacy_session_id (up to 32 bytes), nil when it is
// empty.
func (h *ClientHello) SessionID(buf []byte) []byte { return h.field(buf, h.sid) }

// NumALPN returns the number of ALPN protocol names kept: those offered,
// up to MaxALPN.
func (h *ClientHello) NumALPN() int { return int(h.nALPN) }

// ALPN returns the i-th ALPN protocol name offered, 0 <= i < NumALPN.
func (h *ClientHello) ALPN(buf []byte, i int) []byte { return h.field(buf, h.alpn[i]) }

// HasALPN reports whether proto is among the ALPN protocol names kept.
func (h *ClientHello) HasALPN(buf []byte, proto string) bool {
	for i := range int(h.nALPN) {
		if string(h.field(buf, h.alpn[i])) == proto {
			return true
		}
	}
	return false
}

// MaxVersion returns the highest version of the supported_versions
// extension (0x0304 for TLS 1.3), GREASE values ignored, or the
// legacy_version when the extension is absent.
func (h *ClientHello) MaxVersion() uint16 {
	if h.maxVer != 0 {
		return h.maxVer
	}
	return h.legacy
}

// hsReader reads a handshake message laid out in consecutive records of buf
// (already checked), in the manner of cryptobyte.String: off counts the
// bytes of the message read and lim bounds them.
type hsReader struct {
	buf      []byte
	pos, end int // offset in buf of the next byte and of the end of its record
	off, lim int
}

func (r *hsReader) len() int    { return r.lim - r.off }
func (r *hsReader) empty() bool { return r.off == r.lim }

// enter steps over the next record header if the current record is used
// up. Only call it when a byte is left to read.
func (r *hsReader) enter() {
	if r.pos == r.end {
		r.end = r.pos + recordHeaderLen + int(binary.BigEndian.Uint16(r.buf[r.pos+3:]))
		r.pos += recordHeaderLen
	}
}

func (r *hsReader) u8(v *int) bool {
	if r.empty() {
		return false
	}
	r.enter()
	*v = int(r.buf[r.pos])
	r.pos++
	r.off++
	return true
}

func (r *hsReader) u16(v *int) bool {
	var hi, lo int
	if !r.u8(&hi) || !r.u8(&lo) {
		return false
	}
	*v = hi<<8 | lo
	return true
}

func (r *hsReader) skip(n int) bool {
	if n > r.len() {
		return false
	}
	r.off += n
	for n > 0 {
		r.enter()
		k := min(n, r.end-r.pos)
		r.pos += k
		n -= k
	}
	return true
}

// sub sets s to the next n bytes of r and skips them in r.
func (r *hsReader) sub(n int, s *hsReader) bool {
	*s = *r
	s.lim = s.off + n
	return r.skip(n)
}

// vec8 and vec16 set s to a vector with an 8- or 16-bit length prefix.
func (r *hsReader) vec8(s *hsReader) bool {
	var n int
	return r.u8(&n) && r.sub(n, s)
}

func (r *hsReader) vec16(s *hsReader) bool {
	var n int
	return r.u16(&n) && r.sub(n, s)
}
