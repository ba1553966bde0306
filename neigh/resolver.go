package neigh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"github.com/rs/zerolog"

	"webswitch/tcpfsm/header"
)

const (
	// fastRetry is how often back-ends not yet resolved are asked again,
	// and the shortest refresh period.
	fastRetry = 200 * time.Millisecond
	// gratuitousARPs is how many announcements (a request and a reply
	// each) the resolver sends when it starts answering for a VIP.
	gratuitousARPs = 3
	// logBurst is how many log events a second the resolver writes at most:
	// the frames it answers and learns from come from strangers.
	logBurst = 10
)

// Config is what the resolver resolves and answers. SetConfig swaps it
// whole; its slices must not change afterwards.
type Config struct {
	// VIP is the address the switch serves. The resolver answers ARP for
	// it (IPv4 only, for now) when AnswerVIP is set.
	VIP netip.Addr
	// Backends are the back-ends' addresses, indexed like the switch's
	// back-ends and the Table. IPv4 addresses (4-byte form) are resolved by
	// ARP; others are skipped.
	Backends []netip.Addr
	// Refresh is how often resolved back-ends are asked again, so that a
	// changed MAC address is learned. It is raised to 200 ms if below.
	Refresh time.Duration
	// AnswerVIP makes the resolver answer ARP requests for the VIP and
	// announce it by gratuitous ARP: the switch's default. Off, nobody
	// answers for the VIP (routers reach it through the switch's own
	// address, announced by BGP).
	AnswerVIP bool
}

// Link is the switch's interface as the resolver sees it.
type Link struct {
	MAC [6]byte
	// IPv4 is the interface's own IPv4 address, the sender address of the
	// requests for back-ends; without one (the zero Addr) they are sent as
	// ARP probes, from 0.0.0.0.
	IPv4 netip.Addr
}

// Conn is a packet socket on one interface that receives the ARP frames
// seen there and sends whole Ethernet frames. A *packet.Conn is one.
type Conn interface {
	ReadFrom(b []byte) (int, net.Addr, error)
	WriteTo(b []byte, addr net.Addr) (int, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// Resolver answers ARP for the VIP and resolves the back-ends' MAC
// addresses into a Table, in Run. It asks every back-end when Run starts
// and at every SetConfig, then the unresolved ones every 200 ms and all of
// them every Config.Refresh.
//
// Health: Run returns on the first read error (a dead socket, a vanished
// interface) and Err reports that error from then on. A non-nil Err means
// nobody answers ARP for the VIP and back-ends' MAC changes go unseen: the
// switch must stop or report itself unhealthy.
type Resolver struct {
	conn Conn
	link Link
	own  [4]byte // link.IPv4 as the sender of requests
	tab  *Table
	cfg  atomic.Pointer[Config]
	log  zerolog.Logger
	now  func() time.Time // time.Now, or a test's clock

	// Run's own: the frame being sent (its padding stays zero) and its
	// destination, the frame read.
	out    [minFrameLen]byte
	dstMAC [6]byte
	dst    packet.Addr // HardwareAddr is dstMAC
	in     [256]byte

	mu  sync.Mutex
	err error // the error Run returned
}

// New returns a resolver speaking on conn for link, writing what it learns
// into tab (which should have room for cfg.Backends: see Table.Grow).
func New(conn Conn, link Link, cfg Config, tab *Table, log zerolog.Logger) *Resolver {
	r := &Resolver{
		conn: conn, link: link, tab: tab, now: time.Now,
		log: log.Sample(&zerolog.BurstSampler{Burst: logBurst, Period: time.Second}),
	}
	if link.IPv4.Is4() {
		r.own = link.IPv4.As4()
	}
	r.dst.HardwareAddr = r.dstMAC[:]
	r.cfg.Store(&cfg)
	return r
}

// Listen opens an ARP socket on the interface ifname (which needs
// CAP_NET_RAW) and returns a resolver speaking on it with the interface's
// MAC address and first IPv4 address.
func Listen(ifname string, cfg Config, tab *Table, log zerolog.Logger) (*Resolver, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("neigh: interface %q: %w", ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("neigh: interface %q has no Ethernet address", ifname)
	}
	link := Link{MAC: [6]byte(ifi.HardwareAddr)}
	if link.IPv4, err = FirstIPv4(ifi); err != nil {
		return nil, err
	}
	c, err := packet.Listen(ifi, packet.Raw, header.EtherTypeARP, nil)
	if err != nil {
		return nil, fmt.Errorf("neigh: ARP socket on %q: %w", ifname, err)
	}
	return New(c, link, cfg, tab, log), nil
}

// FirstIPv4 returns the first IPv4 address of the interface ifi, the zero
// Addr when it has none.
func FirstIPv4(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("neigh: addresses of %q: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return netip.AddrFrom4([4]byte(ipn.IP.To4())), nil
		}
	}
	return netip.Addr{}, nil
}

// SetConfig makes the resolver run cfg from now on (a reload): it wakes
// Run, which asks every back-end at once and announces the VIP if cfg
// starts answering for it. Grow the Table to cfg.Backends first. Any
// goroutine may call it.
func (r *Resolver) SetConfig(cfg Config) {
	r.cfg.Store(&cfg)
	// A deadline already past wakes a blocked ReadFrom. Run checks for a new
	// configuration after setting its own deadline, so neither wake-up is
	// lost; an error (the socket closed) means Run is ending anyway.
	_ = r.conn.SetReadDeadline(r.now())
}

// Err returns the error Run stopped with: nil before Run, while it runs,
// and after it stopped because its context ended.
func (r *Resolver) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close closes the socket of a resolver whose Run was never called (Run
// closes it when it returns).
func (r *Resolver) Close() error { return r.conn.Close() }

// Run serves ARP until ctx ends (it then returns nil) or reading the socket
// fails (it returns the error, which Err reports from then on). It closes
// the socket when it returns. Call it once.
func (r *Resolver) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.conn.Close() })
	err := r.serve(ctx)
	if stop() {
		r.conn.Close()
	}
	if ctx.Err() != nil {
		err = nil // the read failed because ctx closed the socket
	}
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	return err
}

func (r *Resolver) serve(ctx context.Context) error {
	var (
		cur                *Config
		announced          netip.Addr // the VIP last announced, while answering for it
		refreshAt, retryAt time.Time  // when to ask every back-end, the unresolved ones
	)
	for ctx.Err() == nil {
		now := r.now()
		if cfg := r.cfg.Load(); cfg != cur {
			cur = cfg
			announced = r.announce(cur, announced)
			refreshAt = now
		}
		switch {
		case !now.Before(refreshAt):
			r.query(cur, true)
			refreshAt, retryAt = now.Add(max(cur.Refresh, fastRetry)), now.Add(fastRetry)
		case !now.Before(retryAt) && !r.tab.Resolved():
			r.query(cur, false)
			retryAt = now.Add(fastRetry)
		}
		deadline := refreshAt
		if retryAt.Before(deadline) && !r.tab.Resolved() {
			deadline = retryAt
		}
		if err := r.conn.SetReadDeadline(deadline); err != nil {
			return err
		}
		if r.cfg.Load() != cur {
			continue // SetConfig's wake-up may have come before our deadline
		}
		n, _, err := r.conn.ReadFrom(r.in[:])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return err
		}
		r.handle(cur, r.in[:n])
	}
	return nil
}

// announce sends gratuitous ARP for cfg's VIP if cfg answers for it and it
// is not last, the VIP already announced; it returns the VIP announced now.
func (r *Resolver) announce(cfg *Config, last netip.Addr) netip.Addr {
	if !cfg.AnswerVIP || !cfg.VIP.Is4() {
		return netip.Addr{}
	}
	if cfg.VIP == last {
		return last
	}
	vip := cfg.VIP.As4()
	for range gratuitousARPs {
		r.send(broadcastMAC, arpOpRequest, vip, [6]byte{}, vip)
		r.send(broadcastMAC, arpOpReply, vip, r.link.MAC, vip)
	}
	return cfg.VIP
}

// query asks for the MAC addresses of cfg's back-ends: all of them, or
// only those not resolved.
func (r *Resolver) query(cfg *Config, all bool) {
	for i, be := range cfg.Backends {
		if !be.Is4() {
			continue
		}
		if _, ok := r.tab.Lookup(i); ok && !all {
			continue
		}
		r.send(broadcastMAC, arpOpRequest, r.own, [6]byte{}, be.As4())
	}
}

// handle learns the sender of an ARP frame if it is a back-end, and
// answers a request for the VIP.
func (r *Resolver) handle(cfg *Config, b []byte) {
	f, ok := parseARP(b)
	if !ok {
		return
	}
	sha := f.sha()
	if !unicast(sha) || sha == r.link.MAC {
		return // no host's address, or our own frame seen again
	}
	spa := f.spa()
	from := netip.AddrFrom4(spa)
	for i, be := range cfg.Backends {
		if be == from && r.tab.Set(i, sha) {
			r.log.Info().Int("backend", i).Stringer("addr", be).
				Stringer("mac", net.HardwareAddr(sha[:])).Msg("back-end resolved")
		}
	}
	if cfg.AnswerVIP && f.op() == arpOpRequest && from != cfg.VIP && netip.AddrFrom4(f.tpa()) == cfg.VIP {
		r.send(sha, arpOpReply, f.tpa(), sha, spa)
	}
}

// send writes an ARP frame of op from our MAC address and spa to dst.
func (r *Resolver) send(dst [6]byte, op uint16, spa [4]byte, tha [6]byte, tpa [4]byte) {
	f := arpFrame(r.out[:])
	f.encode(dst, op, r.link.MAC, spa, tha, tpa)
	r.dstMAC = dst
	if _, err := r.conn.WriteTo(f, &r.dst); err != nil {
		r.log.Warn().Err(err).Msg("arp send")
	}
}
