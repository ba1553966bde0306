// Package pktrate measures how many client frames per second the switch
// forwards for spliced flows: ring in, MAC rewrite, ring out.
//
// Run establishes real TCP connections from the client namespace through
// the switch (each fetches one small file and stays open, so the switch has
// it spliced to a back-end), reads each socket's sequence numbers with
// TCP_REPAIR and leaves it in repair mode so that the client's kernel sends
// nothing, then replays a valid pure ACK of every flow, round-robin, from an
// AF_PACKET socket on the client's eth0 with batched sendmmsg(2). The
// back-ends take them as duplicate ACKs with nothing outstanding and ignore
// them. The switch's per-shard counters (SIGUSR1) and the interfaces'
// packet counters are read before and after.
//
// Its sender and helpers (OpenSender, Send, Segment, NeighbourMAC, ReadCPU)
// also serve bench/attack.
package pktrate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"webswitch/bench/procstat"
	"webswitch/bench/site"
	"webswitch/bench/testbed"
	"webswitch/tcpfsm/header"
)

// Defaults for zero Config fields, and limits.
const (
	DefaultFlows    = 1000
	DefaultDuration = 5 * time.Second
	DefaultBatch    = 256
	// MaxBatch is the most frames one sendmmsg(2) call takes (UIO_MAXIOV).
	MaxBatch = 1024
)

// ackWindow is the raw window field of the replayed ACKs (64 KiB at the
// usual window scale of 7). The back-ends have nothing in flight, so it
// only sets their send window, which the client's next real segment sets
// again.
const ackWindow = 512

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("pktrate: invalid config")

// Config describes a run. Zero fields take the defaults.
type Config struct {
	Flows    int           // spliced flows to replay ACKs of (default 1000)
	Duration time.Duration // how long to send (default 5 s)
	Rate     float64       // frames per second to offer; 0: as fast as the sender can
	Batch    int           // frames per sendmmsg(2) call, at most MaxBatch (default 256)
}

// withDefaults returns c with zero fields replaced by the defaults, or an
// error if a field is out of range.
func (c Config) withDefaults() (Config, error) {
	if c.Flows < 0 || c.Duration < 0 || c.Rate < 0 || c.Batch < 0 || c.Batch > MaxBatch {
		return c, fmt.Errorf("%w: %+v", ErrConfig, c)
	}
	if c.Flows == 0 {
		c.Flows = DefaultFlows
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	return c, nil
}

// ShardResult is one shard's share of a run. The counts are from just
// before the sender started until the switch had processed every frame it
// received; FPS counts only the frames forwarded while the sender ran.
type ShardResult struct {
	Shard     int     `json:"shard"`
	FramesIn  uint64  `json:"frames_in"`  // frames the shard took from its ring
	Forwarded uint64  `json:"forwarded"`  // frames it forwarded to a back-end
	RingDrops uint64  `json:"ring_drops"` // frames the kernel dropped because its ring was full
	TxDropped uint64  `json:"tx_dropped"` // frames its transmit path refused
	FPS       float64 `json:"fps"`        // frames forwarded per second of the send
}

// Result is the outcome of a run.
type Result struct {
	Flows   int     `json:"flows"`
	Seconds float64 `json:"seconds"` // how long the sender sent
	Sent    uint64  `json:"sent"`    // frames the client's kernel took from the sender
	// SendErrors counts the frames not sent: refused, or dropped with the
	// rest of their batch when the socket buffer or the device queue was
	// full (ring.Sender.Flush does not retry).
	SendErrors   uint64        `json:"send_errors"`
	OfferedFPS   float64       `json:"offered_fps"` // Sent per second
	Shards       []ShardResult `json:"shards"`
	ForwardedFPS float64       `json:"forwarded_fps"` // sum of the shards' FPS
	// SwitchRxFrames counts the frames that reached the switch's eth0, and
	// BackendRxFrames those that reached the back-ends' eth0, replayed ACKs
	// and the little background traffic (ARP) alike.
	SwitchRxFrames  uint64 `json:"switch_rx_frames"`
	BackendRxFrames uint64 `json:"backend_rx_frames"`
	// CPU used while the sender ran, in cores (CPU seconds per second): by
	// the webswitch process, by the sending thread, and by the whole
	// machine (all CPUs' busy time, interrupts and softirqs included).
	SwitchCPU  float64 `json:"switch_cpu"`
	SenderCPU  float64 `json:"sender_cpu"`
	MachineCPU float64 `json:"machine_cpu"`
	NumCPU     int     `json:"num_cpu"`
}

// Run measures the forwarding rate of the site's switch (see the package
// comment). Everything it opens it closes before returning: the flows end
// with a FIN each.
func Run(s *site.Site, cfg Config) (res Result, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return res, err
	}
	flows, err := dialFlows(s.TB, cfg.Flows)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, closeFlows(flows)) }()
	snd, err := OpenSender(s.TB, "cli")
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, snd.Close()) }()
	hw := snd.HardwareAddr()
	if len(hw) != 6 {
		return res, fmt.Errorf("pktrate: the client's eth0 has no Ethernet address: %v", hw)
	}
	frames, err := buildFrames(s.TB, flows, [6]byte(hw))
	if err != nil {
		return res, err
	}

	if0, err := readInterfaces(s.TB)
	if err != nil {
		return res, err
	}
	// The CPU times are read right around the send; the counters on either
	// side of them.
	before, err := s.ShardCounters()
	if err != nil {
		return res, err
	}
	cpu0, err := ReadCPU(s)
	if err != nil {
		return res, err
	}
	var st SendStats
	if err := s.TB.Do("cli", func() error {
		if err := pinToLastCPU(); err != nil {
			return err
		}
		st = Send(context.Background(), snd, cfg.Batch, cfg.Duration, cfg.Rate, roundRobin(frames))
		return nil
	}); err != nil {
		return res, err
	}
	cpu1, err := ReadCPU(s)
	if err != nil {
		return res, err
	}
	end, err := s.ShardCounters()
	if err != nil {
		return res, err
	}
	after, err := settle(s, end)
	if err != nil {
		return res, err
	}
	if1, err := readInterfaces(s.TB)
	if err != nil {
		return res, err
	}

	secs := st.Elapsed.Seconds()
	res = Result{
		Flows:           cfg.Flows,
		Seconds:         secs,
		Sent:            st.Sent,
		SendErrors:      st.Errors,
		OfferedFPS:      float64(st.Sent) / secs,
		SwitchRxFrames:  if1.switchRx - if0.switchRx,
		BackendRxFrames: if1.backendRx - if0.backendRx,
		SwitchCPU:       (cpu1.Switch - cpu0.Switch).Seconds() / secs,
		SenderCPU:       st.CPU.Seconds() / secs,
		MachineCPU:      (cpu1.Machine - cpu0.Machine).Seconds() / secs,
		NumCPU:          cpu1.NumCPU,
	}
	if res.Shards, err = shardResults(before, end, after, secs); err != nil {
		return res, err
	}
	for _, sh := range res.Shards {
		res.ForwardedFPS += sh.FPS
	}
	return res, nil
}

// buildFrames puts every flow into repair mode and returns an ACK frame of
// each, back to back.
func buildFrames(tb *testbed.Testbed, flows []flow, clientMAC [6]byte) ([]byte, error) {
	switchMAC, err := NeighbourMAC(tb, "cli", testbed.VIP)
	if err != nil {
		return nil, err
	}
	ack := Segment{
		SrcMAC: clientMAC, DstMAC: switchMAC,
		Src:     netip.MustParseAddr(testbed.ClientIP).As4(),
		Dst:     netip.MustParseAddr(testbed.VIP).As4(),
		DstPort: 80, Flags: header.FlagACK, Window: ackWindow,
	}
	frames := make([]byte, len(flows)*FrameLen)
	for i := range flows {
		if ack.Seq, ack.Ack, err = flows[i].repair(); err != nil {
			return nil, err
		}
		ack.SrcPort = flows[i].localPort()
		ack.Encode(frames[i*FrameLen:])
	}
	return frames, nil
}

// CPUTimes are CPU times at one moment.
type CPUTimes struct {
	Switch  time.Duration // used by the webswitch process
	Machine time.Duration // busy time of all the machine's CPUs together
	NumCPU  int
}

// ReadCPU reads the CPU times of the site's switch and of the machine.
func ReadCPU(s *site.Site) (CPUTimes, error) {
	var t CPUTimes
	var err error
	if t.Switch, err = procstat.Process(s.Switch.Cmd.Process.Pid); err != nil {
		return t, err
	}
	t.Machine, t.NumCPU, err = procstat.Machine()
	return t, err
}

// Settling: how often and how long to look for the switch to go idle.
const (
	settleStep = 100 * time.Millisecond
	settleMax  = 10 * time.Second
)

// settle waits until the switch has taken every frame from its rings, that
// is until no shard's frames_in changes over settleStep, and returns the
// counters then. last are the latest counters read.
func settle(s *site.Site, last map[int]map[string]any) (map[int]map[string]any, error) {
	deadline := time.Now().Add(settleMax)
	for {
		time.Sleep(settleStep)
		cur, err := s.ShardCounters()
		if err != nil {
			return nil, err
		}
		same := len(cur) == len(last)
		for shard, c := range cur {
			same = same && c["frames_in"] == last[shard]["frames_in"]
		}
		if same {
			return cur, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pktrate: the switch still takes frames %v after the send", settleMax)
		}
		last = cur
	}
}

// shardResults returns every shard's counts between before and after and its
// forwarding rate between before and end, secs apart.
func shardResults(before, end, after map[int]map[string]any, secs float64) ([]ShardResult, error) {
	var out []ShardResult
	for shard := range after {
		var c [3]shardCounts // before, end, after
		for i, m := range []map[int]map[string]any{before, end, after} {
			var err error
			if c[i], err = parseCounts(m[shard]); err != nil {
				return nil, fmt.Errorf("pktrate: shard %d: %w", shard, err)
			}
		}
		out = append(out, ShardResult{
			Shard:     shard,
			FramesIn:  c[2].framesIn - c[0].framesIn,
			Forwarded: c[2].forwarded - c[0].forwarded,
			RingDrops: c[2].ringDrops - c[0].ringDrops,
			TxDropped: c[2].txDropped - c[0].txDropped,
			FPS:       float64(c[1].forwarded-c[0].forwarded) / secs,
		})
	}
	slices.SortFunc(out, func(a, b ShardResult) int { return a.Shard - b.Shard })
	return out, nil
}

// shardCounts are the counters of one shard that a run reports.
type shardCounts struct {
	framesIn, forwarded, ringDrops, txDropped uint64
}

// parseCounts takes the counters a run reports from a shard's logged
// counters; a missing one is an error.
func parseCounts(c map[string]any) (shardCounts, error) {
	var sc shardCounts
	for _, f := range []struct {
		key string
		dst *uint64
	}{
		{"frames_in", &sc.framesIn},
		{"frames_forwarded", &sc.forwarded},
		{"ring_drops", &sc.ringDrops},
		{"tx_dropped", &sc.txDropped},
	} {
		v, ok := c[f.key].(float64)
		if !ok || v < 0 {
			return sc, fmt.Errorf("no counter %q in the switch's log", f.key)
		}
		*f.dst = uint64(v)
	}
	return sc, nil
}

// interfaces are packet counters of the testbed's interfaces.
type interfaces struct {
	switchRx  uint64 // frames received by the switch's eth0
	backendRx uint64 // frames received by all back-ends' eth0
}

// readInterfaces reads the interfaces' packet counters.
func readInterfaces(tb *testbed.Testbed) (interfaces, error) {
	var ifs interfaces
	var err error
	if ifs.switchRx, err = rxPackets(tb, "sw"); err != nil {
		return ifs, err
	}
	for i := 1; i <= tb.Backends; i++ {
		n, err := rxPackets(tb, "be"+strconv.Itoa(i))
		if err != nil {
			return ifs, err
		}
		ifs.backendRx += n
	}
	return ifs, nil
}

// rxPackets returns the rx_packets counter of eth0 in the namespace of host.
func rxPackets(tb *testbed.Testbed, host string) (uint64, error) {
	out, err := tb.Run(host, "cat", "/sys/class/net/eth0/statistics/rx_packets")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("pktrate: rx_packets of eth0 in %s: %w", tb.NS(host), err)
	}
	return n, nil
}

// Files is the document root a packet-rate site serves on both back-ends:
// the flows fetch "/static/" (be1's pool) and "/" (be2's).
var Files = map[string][]byte{"static/index.html": []byte("be1\n"), "index.html": []byte("be2\n")}

// StartSite brings up a site for Run in a new testbed with that prefix,
// writing Files under dir.
func StartSite(binDir, dir, prefix string, shards int) (*site.Site, error) {
	www := filepath.Join(dir, "www")
	if err := site.WriteFiles(www, Files); err != nil {
		return nil, err
	}
	return site.Start(site.Config{
		BinDir: binDir, Dir: dir, Static1: www, Static2: www,
		Offloads: true, Shards: shards, Prefix: prefix,
	})
}
