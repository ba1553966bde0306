package tcpfsm

import (
	"encoding/binary"
	"time"

	"webswitch/internal/mono"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

// Tuple identifies a connection as the switch sees it.
type Tuple struct {
	ClientIP   [4]byte
	VIP        [4]byte
	ClientPort uint16
	VIPPort    uint16
}

// CookiePeriod is the life of one cookie epoch in nanoseconds; a cookie is
// accepted in its own epoch and the next, so it lives 64 to 128 seconds.
const CookiePeriod = 64 * time.Second

// cookieMSS are the MSS values a cookie can carry (3 bits): the largest one
// not above the client's MSS is kept.
var cookieMSS = [...]uint16{536, 1220, 1440, 1460, 4312, 8960}

const (
	cookieDataBits = 8 // 3 bits MSS index, 4 bits window scale (15: none), 1 bit SACK
	cookieNoWScale = 15
)

// Cookies makes and checks SYN cookies: the switch keeps no state for a SYN.
// The cookie is the switch's initial sequence number: a 24-bit SipHash of the
// connection's addresses, ports, the client's initial sequence number and the
// epoch, mixed with the option bits, followed by 8 bits of the client's MSS,
// window scale and SACK options, masked with more bits of the same hash. A Cookies is read-only
// after NewCookies and safe for concurrent use.
type Cookies struct {
	k0, k1 uint64
}

// NewCookies returns a cookie maker keyed with key (random, secret).
func NewCookies(key [16]byte) *Cookies {
	k0, k1 := sipKey(key)
	return &Cookies{k0: k0, k1: k1}
}

func (c *Cookies) hash(t *Tuple, isn seqnum.Value, epoch int64) uint64 {
	var m [3]uint64
	m[0] = uint64(binary.BigEndian.Uint32(t.ClientIP[:]))<<32 | uint64(t.ClientPort)<<16 | uint64(t.VIPPort)
	m[1] = uint64(binary.BigEndian.Uint32(t.VIP[:]))<<32 | uint64(isn)
	m[2] = uint64(epoch)
	return sipHash24(c.k0, c.k1, m[:], 24)
}

// Make returns the cookie for a SYN of t with initial sequence number isn and options o.
func (c *Cookies) Make(now mono.Time, t *Tuple, isn seqnum.Value, o *header.SynOptions) seqnum.Value {
	h := c.hash(t, isn, epochOf(now))
	d := encodeCookieData(o)
	return seqnum.Value(cookieMAC(h, d)<<cookieDataBits | uint32(d^uint8(h)))
}

// Check reports whether cookie is one this switch made for a SYN of t with
// initial sequence number isn, in the current or the previous epoch, and if
// so fills o with the options the cookie carries (MSS rounded down to the
// table above).
func (c *Cookies) Check(now mono.Time, t *Tuple, isn, cookie seqnum.Value, o *header.SynOptions) bool {
	epoch := epochOf(now)
	for _, e := range [2]int64{epoch, epoch - 1} {
		h := c.hash(t, isn, e)
		d := uint8(cookie) ^ uint8(h)
		if uint32(cookie)>>cookieDataBits != cookieMAC(h, d) {
			continue
		}
		return decodeCookieData(d, o)
	}
	return false
}

// cookieMAC returns the 24 authenticating bits of a cookie: hash bits mixed
// with the option bits, so that a cookie whose option bits were altered fails.
func cookieMAC(h uint64, d uint8) uint32 {
	return (uint32(h>>cookieDataBits) ^ uint32(d)*0x010101) & (1<<(32-cookieDataBits) - 1)
}

func encodeCookieData(o *header.SynOptions) uint8 {
	idx := 0
	for i, m := range cookieMSS {
		if o.MSS >= m {
			idx = i
		}
	}
	ws := uint8(cookieNoWScale)
	if o.WScaleOK {
		ws = o.WScale
	}
	d := uint8(idx)<<5 | ws<<1
	if o.SACKOK {
		d |= 1
	}
	return d
}

func decodeCookieData(d uint8, o *header.SynOptions) bool {
	idx := int(d >> 5)
	ws := (d >> 1) & 0xF
	if idx >= len(cookieMSS) || (ws != cookieNoWScale && ws > header.MaxWScale) {
		return false
	}
	*o = header.SynOptions{MSS: cookieMSS[idx], SACKOK: d&1 != 0}
	if ws != cookieNoWScale {
		o.WScale, o.WScaleOK = ws, true
	}
	return true
}

// epochOf returns the cookie epoch of now: its number of CookiePeriods.
func epochOf(now mono.Time) int64 { return int64(now) / int64(CookiePeriod) }
