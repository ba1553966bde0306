// Package attack sends hostile traffic at the switch from the test network,
// for the reliability tests, and measures what it costs the switch and the
// real clients.
//
// Flood floods the VIP from random spoofed sources, from an AF_PACKET
// socket with batched sendmmsg(2) (bench/pktrate's sender), with SYNs or
// with ACKs of connections that never existed (FloodKind). The switch
// answers each SYN with a SYN-ACK carrying a cookie and must keep no state
// for it; it must bound the work of the ACKs, which it asks its agents
// about (flow recovery). FloodTrial runs a flood against a site while a
// real client (wsbench load) fetches a page through the switch, and
// measures what the flood cost the switch, its agents and the client.
package attack

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"webswitch/bench/pktrate"
	"webswitch/bench/testbed"
)

// DefaultFloodDuration is the duration of a flood when
// FloodConfig.Duration is 0.
const DefaultFloodDuration = 10 * time.Second

// Defaults for the other zero FloodConfig fields.
const (
	floodHost  = "atk" // the testbed's attacker host (testbed.AddAttacker)
	floodBatch = 256
	floodPort  = 80
)

// arpWait bounds how long Flood waits for the VIP's MAC address.
const arpWait = 3 * time.Second

// ErrConfig reports an invalid configuration.
var ErrConfig = errors.New("attack: invalid config")

// FloodConfig describes a flood. Zero fields take the defaults.
type FloodConfig struct {
	TB       *testbed.Testbed // the test network (required)
	Kind     FloodKind        // what to send (default FloodSYN)
	Host     string           // the host that sends, on the LAN (default "atk")
	Duration time.Duration    // how long to send (default 10 s)
	Rate     float64          // segments per second to offer; 0: as fast as the sender can
	Batch    int              // frames per sendmmsg(2) call, at most pktrate.MaxBatch (default 256)
	Port     uint16           // the VIP's port to flood (default 80)
}

// withDefaults returns c with zero fields replaced by the defaults, or an
// error if a field is out of range.
func (c FloodConfig) withDefaults() (FloodConfig, error) {
	if c.Kind == 0 {
		c.Kind = FloodSYN
	}
	if c.TB == nil || !c.Kind.valid() || c.Duration < 0 || !(c.Rate >= 0) || c.Batch < 0 || c.Batch > pktrate.MaxBatch {
		return c, fmt.Errorf("%w: %+v", ErrConfig, c)
	}
	if c.Host == "" {
		c.Host = floodHost
	}
	if c.Duration == 0 {
		c.Duration = DefaultFloodDuration
	}
	if c.Batch == 0 {
		c.Batch = floodBatch
	}
	if c.Port == 0 {
		c.Port = floodPort
	}
	return c, nil
}

// FloodResult is what a flood sent.
type FloodResult struct {
	Kind    FloodKind `json:"kind"`
	Seconds float64   `json:"seconds"` // how long the sender sent
	Sent    uint64    `json:"sent"`    // segments the sending host's kernel took
	// SendErrors counts the segments not sent: dropped with the rest of their
	// batch when the socket buffer or the device queue was full
	// (ring.Sender.Flush does not retry), or refused.
	SendErrors uint64  `json:"send_errors"`
	Rate       float64 `json:"rate"`       // Sent per second: the flood rate offered to the switch
	SenderCPU  float64 `json:"sender_cpu"` // CPU of the sending thread, in cores (CPU seconds per second)
}

// Flood sends segments of cfg.Kind to the VIP from cfg.Host for
// cfg.Duration, or until ctx is done: from random sources (see
// floodSource), to the switch's MAC address, which the host learns by ARP.
// The host's kernel drops what comes back (SYN-ACKs, RSTs), addressed to
// sources it does not have.
func Flood(ctx context.Context, cfg FloodConfig) (res FloodResult, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return res, err
	}
	dstMAC, err := resolveVIP(cfg.TB, cfg.Host)
	if err != nil {
		return res, err
	}
	snd, err := pktrate.OpenSender(cfg.TB, cfg.Host)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, snd.Close()) }()
	hw := snd.HardwareAddr()
	if len(hw) != 6 {
		return res, fmt.Errorf("attack: eth0 of %s has no Ethernet address: %v", cfg.TB.NS(cfg.Host), hw)
	}
	src := newFloodSource(cfg.Kind, [6]byte(hw), dstMAC, netip.MustParseAddr(testbed.VIP).As4(), cfg.Port, rand.Uint64(), rand.Uint64())
	var st pktrate.SendStats
	if err := cfg.TB.Do(cfg.Host, func() error {
		st = pktrate.Send(ctx, snd, cfg.Batch, cfg.Duration, cfg.Rate, src.add)
		return nil
	}); err != nil {
		return res, err
	}
	secs := st.Elapsed.Seconds()
	return FloodResult{
		Kind:       cfg.Kind,
		Seconds:    secs,
		Sent:       st.Sent,
		SendErrors: st.Errors,
		Rate:       float64(st.Sent) / secs,
		SenderCPU:  st.CPU.Seconds() / secs,
	}, nil
}

// resolveVIP returns the MAC address host has for the VIP, after making
// its kernel ask with ARP: it sends one UDP datagram to the VIP's discard
// port, which the switch drops.
func resolveVIP(tb *testbed.Testbed, host string) ([6]byte, error) {
	if err := tb.Do(host, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(testbed.VIP, "9"))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("arp"))
		return err
	}); err != nil {
		return [6]byte{}, fmt.Errorf("attack: datagram to the VIP: %w", err)
	}
	deadline := time.Now().Add(arpWait)
	for {
		mac, err := pktrate.NeighbourMAC(tb, host, testbed.VIP)
		if err == nil || time.Now().After(deadline) {
			return mac, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
