package conf

import (
	"net/netip"
	"time"
)

// BGP is the optional [bgp] table: the switch announces the VIP/32 to its
// peers (the routers in front of a cluster of switches) while it can serve,
// and no longer answers ARP for the VIP. Without the table (Switch.BGP nil)
// the switch owns the VIP at layer 2: it answers ARP for it. A running switch cannot change any
// of it: its sessions, and whether it owns the VIP at layer 2, are set up
// at start.
type BGP struct {
	// ASN is the switch's autonomous system number (required).
	ASN uint32 `toml:"asn" reload:"restart"`
	// RouterID is the switch's BGP identifier. Default: LocalAddress.
	RouterID netip.Addr `toml:"router_id" reload:"restart"`
	// LocalAddress is the switch's own IPv4 address towards the peers: the
	// source of its sessions and the next hop it announces for the VIP.
	// Default: the first IPv4 address of switch.interface.
	LocalAddress netip.Addr `toml:"local_address" reload:"restart"`
	// ListenPort, when not 0, makes the switch accept its peers'
	// connections on LocalAddress:ListenPort too (179 needs
	// CAP_NET_BIND_SERVICE): a router that connects as well as it accepts
	// then has a restarted switch back in a second, rather than after the
	// switch's own first attempt (2 s after its start, 7 s after a
	// session loss). Default 0: the switch listens on no port.
	ListenPort uint16 `toml:"listen_port" reload:"restart"`
	// HoldTime is the BGP hold time the switch offers (a session uses the
	// smaller of the two sides'): a peer that hears nothing for this long
	// drops the session and the route. Whole seconds, 3s to 65535s.
	// Default 9s.
	HoldTime Duration `toml:"hold_time" reload:"restart"`
	// Peers are the routers the switch announces the VIP to (at least
	// one).
	Peers []BGPPeer `toml:"peer" reload:"restart"`
}

// BGPPeer is a [[bgp.peer]] table: a router.
type BGPPeer struct {
	// Address is the router's IPv4 address (required, unique).
	Address netip.Addr `toml:"address"`
	// Port is the router's BGP port. Default 179.
	Port uint16 `toml:"port"`
	// ASN is the router's autonomous system number (required); the
	// switch's own makes an internal (iBGP) session.
	ASN uint32 `toml:"asn"`
	// BFD turns on BFD (single hop, UDP port 3784) with the router, which
	// must run it too: a dead switch is then seen in about a second rather
	// than at the hold time.
	BFD bool `toml:"bfd"`
}

// BGP defaults.
const (
	DefaultBGPHoldTime = 9 * time.Second
	DefaultBGPPort     = 179
)

func (b *BGP) setDefaults()     { b.HoldTime = Duration{DefaultBGPHoldTime} }
func (p *BGPPeer) setDefaults() { p.Port = DefaultBGPPort }

// asTrans is AS_TRANS (RFC 6793), which stands for a four-byte AS number in
// a two-byte field and is no one's own.
const asTrans = 23456

func (b *BGP) validate(v *validator, vip netip.Addr) {
	v.asn("bgp.asn", b.ASN)
	if b.RouterID.IsValid() {
		v.ipv4("bgp.router_id", b.RouterID)
	}
	if b.LocalAddress.IsValid() {
		v.ipv4("bgp.local_address", b.LocalAddress)
		if b.LocalAddress == vip {
			v.fail("bgp.local_address", "%v is the VIP: the next hop must be the switch's own address", b.LocalAddress)
		}
	}
	// RFC 4271 also allows 0 (no keepalives), but GoBGP reads 0 as its
	// default of 90s.
	v.durationRange("bgp.hold_time", b.HoldTime, 3*time.Second, 65535*time.Second)
	if b.HoldTime.Duration%time.Second != 0 {
		v.fail("bgp.hold_time", "%v is not a whole number of seconds", b.HoldTime)
	}
	if len(b.Peers) == 0 {
		v.fail("bgp.peer", "at least one [[bgp.peer]] is required")
	}
	addrs := make(map[netip.Addr]int)
	for i, p := range b.Peers {
		path := indexPath("bgp.peer", i)
		v.ipv4(path+".address", p.Address)
		if j, dup := addrs[p.Address]; dup && p.Address.IsValid() {
			v.fail(path+".address", "address %v is already used by bgp.peer[%d]", p.Address, j)
		} else {
			addrs[p.Address] = i
		}
		if p.Address == vip && p.Address.IsValid() {
			v.fail(path+".address", "address %v is the VIP", p.Address)
		}
		if p.Port == 0 {
			v.fail(path+".port", "port 0 is not allowed")
		}
		v.asn(path+".asn", p.ASN)
	}
}

// asn checks an autonomous system number: required, not AS_TRANS, not
// 4294967295 (reserved, RFC 7300).
func (v *validator) asn(path string, n uint32) {
	switch {
	case !v.required(path, n != 0):
	case n == asTrans:
		v.fail(path, "%d is AS_TRANS (RFC 6793), not an AS number", n)
	case n == 1<<32-1:
		v.fail(path, "%d is reserved (RFC 7300)", n)
	}
}
