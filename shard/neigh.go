package shard

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"github.com/rs/zerolog"

	"webswitch/tcpfsm/header"
)

// neighbors holds the back-ends' MAC addresses, written by the ARP goroutine
// (and grown by a reload) and read by every shard through an atomically
// swapped snapshot.
type neighbors struct {
	p  atomic.Pointer[[]neighbor]
	mu sync.Mutex // writers
}

type neighbor struct {
	mac [6]byte
	ok  bool
}

func newNeighbors(n int) *neighbors {
	nb := &neighbors{}
	s := make([]neighbor, n)
	nb.p.Store(&s)
	return nb
}

// mac returns back-end b's MAC address, if known.
func (nb *neighbors) mac(b int) ([6]byte, bool) {
	s := *nb.p.Load()
	return s[b].mac, s[b].ok
}

// grow makes room for n back-ends, keeping the addresses known.
func (nb *neighbors) grow(n int) {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	old := *nb.p.Load()
	if len(old) >= n {
		return
	}
	s := append(make([]neighbor, 0, n), old...)
	s = s[:n]
	nb.p.Store(&s)
}

func (nb *neighbors) set(b int, mac [6]byte) bool {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	old := *nb.p.Load()
	if old[b].ok && old[b].mac == mac {
		return false
	}
	s := append([]neighbor(nil), old...)
	s[b] = neighbor{mac: mac, ok: true}
	nb.p.Store(&s)
	return true
}

func (nb *neighbors) resolved() bool {
	for _, n := range *nb.p.Load() {
		if !n.ok {
			return false
		}
	}
	return true
}

const (
	arpLen         = 28
	arpOpRequest   = 1
	arpOpReply     = 2
	arpFastRetry   = 200 * time.Millisecond
	etherTypeARP   = 0x0806
	gratuitousARPs = 3
)

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpResponder answers ARP for the VIP from user space (the switch's kernel
// does not own it), sends gratuitous ARP at start, and resolves the
// back-ends' MAC addresses, refreshing them every ARPRefresh.
type arpResponder struct {
	cfg   atomic.Pointer[Config] // swapped by a reload
	conn  *packet.Conn
	mac   [6]byte
	ownIP [4]byte // the interface's own address, the sender of ARP requests (zero: probes)
	nb    *neighbors
	log   zerolog.Logger
	buf   [64]byte
}

func newARPResponder(cfg *Config, nb *neighbors, log zerolog.Logger) (*arpResponder, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, err
	}
	c, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return nil, err
	}
	a := &arpResponder{conn: c, nb: nb, log: sampled(log)}
	a.cfg.Store(cfg)
	copy(a.mac[:], ifi.HardwareAddr)
	if addrs, err := ifi.Addrs(); err == nil {
		for _, ad := range addrs {
			if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.To4() != nil {
				a.ownIP = [4]byte(ipn.IP.To4())
				break
			}
		}
	}
	return a, nil
}

// send writes an ARP frame of op from (our MAC, spa) to (tha, tpa).
func (a *arpResponder) send(dst [6]byte, op uint16, spa [4]byte, tha [6]byte, tpa [4]byte) {
	b := a.buf[:header.EthernetLen+arpLen]
	header.Ethernet(b).Encode(dst[:], a.mac[:], etherTypeARP)
	p := b[header.EthernetLen:]
	binary.BigEndian.PutUint16(p[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(p[2:], 0x0800) // IPv4
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], op)
	copy(p[8:14], a.mac[:])
	copy(p[14:18], spa[:])
	copy(p[18:24], tha[:])
	copy(p[24:28], tpa[:])
	if _, err := a.conn.WriteTo(b, &packet.Addr{HardwareAddr: dst[:]}); err != nil {
		a.log.Warn().Err(err).Msg("arp send")
	}
}

func (a *arpResponder) gratuitous() {
	for range gratuitousARPs {
		vip := a.cfg.Load().VIP
		a.send(broadcastMAC, arpOpRequest, vip, [6]byte{}, vip)
		a.send(broadcastMAC, arpOpReply, vip, a.mac, vip)
	}
}

func (a *arpResponder) query() {
	for _, b := range a.cfg.Load().Backends {
		a.send(broadcastMAC, arpOpRequest, a.ownIP, [6]byte{}, b.IP)
	}
}

// arpPacket is the part of an Ethernet/IPv4 ARP packet the switch uses.
type arpPacket struct {
	op       uint16
	sha      [6]byte
	spa, tpa [4]byte
}

// parseARP reads an Ethernet frame carrying an Ethernet/IPv4 ARP packet.
func parseARP(b []byte, p *arpPacket) bool {
	if len(b) < header.EthernetLen+arpLen || header.Ethernet(b).Type() != etherTypeARP {
		return false
	}
	a := b[header.EthernetLen:]
	if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != 0x0800 || a[4] != 6 || a[5] != 4 {
		return false
	}
	p.op = binary.BigEndian.Uint16(a[6:])
	p.sha, p.spa, p.tpa = [6]byte(a[8:14]), [4]byte(a[14:18]), [4]byte(a[24:28])
	return true
}

// handle answers requests for the VIP and learns back-end addresses.
func (a *arpResponder) handle(b []byte) {
	var p arpPacket
	if !parseARP(b, &p) {
		return
	}
	cfg := a.cfg.Load()
	for i, be := range cfg.Backends {
		if p.spa == be.IP && p.sha != broadcastMAC {
			if a.nb.set(i, p.sha) {
				a.log.Info().Str("backend", be.Name).Str("mac", net.HardwareAddr(p.sha[:]).String()).Msg("back-end resolved")
			}
		}
	}
	if p.op == arpOpRequest && p.tpa == cfg.VIP && p.spa != cfg.VIP {
		a.send(p.sha, arpOpReply, cfg.VIP, p.sha, p.spa)
	}
}

// run serves ARP until ctx ends.
func (a *arpResponder) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { a.conn.Close() })
	defer stop()
	a.gratuitous()
	a.query()
	next := time.Now().Add(arpFastRetry)
	buf := make([]byte, 1514)
	for ctx.Err() == nil {
		if now := time.Now(); !now.Before(next) {
			a.query()
			if a.nb.resolved() {
				next = now.Add(a.cfg.Load().ARPRefresh)
			} else {
				next = now.Add(arpFastRetry)
			}
		}
		a.conn.SetReadDeadline(next)
		n, _, err := a.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if ctx.Err() == nil {
				a.log.Error().Err(err).Msg("arp read")
			}
			return
		}
		a.handle(buf[:n])
	}
}
