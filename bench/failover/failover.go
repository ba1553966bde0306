// Package failover compares, in one routed testbed, what clients lose when
// the active node of a pair dies under load: an HAProxy pair whose VIP
// keepalived moves by VRRP, and webswitch with two switches announcing the
// VIP by BGP to the router ("wsbench failover").
//
// The same load runs against both: paced downloads of a 10 MiB file
// (checked by SHA-256) and a steady stream of small requests, each on a
// new connection; KillAfter into it, one node dies: the HAProxy master (sw)
// or webswitch's switch 1 (sw). With DeathHost, the LAN first drops its
// frames; then its processes are killed with SIGKILL (haproxy and
// keepalived; the switch). What it measures: downloads broken, small
// requests failed, the longest small request, and the time until a new
// connection succeeds again for good.
//
// Both run in the switch hosts sw and sw2 of one site: webswitch first,
// then, its switches gone, HAProxy and keepalived in the same hosts, in
// front of the back-ends' direct listeners (serve.direct_listen). The
// router reaches the HAProxy pair's VIP by ARP on its LAN (the VIP is on
// the master's eth0), webswitch's through the BGP routes.
package failover

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"webswitch/bench/load"
	"webswitch/bench/scenario"
	"webswitch/bench/site"
	"webswitch/bench/testbed"
)

// The files the back-ends serve: the download and the small request's.
const (
	BigFile   = "failover.bin"
	bigSize   = 10 << 20
	SmallFile = "1k.bin"
	smallSize = 1 << 10
)

// clientRmem is the client's net.ipv4.tcp_rmem: a receive buffer of
// 512 KiB at most, so that a download's data crosses the network at the
// rate curl reads it. With the default 6 MiB, the server sends most of a
// 10 MiB file in the first second, and a download survives any failover
// that comes later.
const clientRmem = "4096 131072 524288"

// Defaults of Config.
const (
	DefaultDownloads    = 8
	DefaultDownloadRate = 2 << 20 // bytes/s: a download lasts 5 s
	DefaultRate         = 100
	DefaultTimeout      = 3 * time.Second
	DefaultKillAfter    = 1500 * time.Millisecond
	DefaultDuration     = 6 * time.Second
	DefaultAdvert       = time.Second
)

// Setups, the names of the trials.
const (
	SetupHAProxy   = "haproxy+keepalived"
	SetupWebswitch = "webswitch"
)

// Deaths, the values of Config.Death.
const (
	// DeathProcess kills the node's processes with SIGKILL; its kernel
	// lives on, and goes on sending what their sockets held and closing
	// them.
	DeathProcess = "process"
	// DeathHost first drops every frame from or to the node on the LAN
	// (by nftables on the bridge; its port stays up, so that its frames
	// are not flooded to the other ports), then kills its processes:
	// nothing leaves or reaches the node any more, its kernel's TCP state
	// is lost to the clients, as when a machine hangs or loses its power.
	DeathHost = "host"
)

// ErrConfig reports a Config out of range.
var ErrConfig = errors.New("failover: bad configuration")

// Config describes the load of each trial and the HAProxy pair's VRRP.
type Config struct {
	Wsbench      string        `json:"-"`             // the wsbench binary, whose "wsbench load" sends the small requests (required)
	Downloads    int           `json:"downloads"`     // concurrent downloads of BigFile
	DownloadRate int           `json:"download_rate"` // bytes/s each download reads
	Rate         float64       `json:"rate"`          // small requests per second, each on a new connection (open loop)
	Timeout      time.Duration `json:"timeout_ns"`    // a small request's time limit: a slower one failed
	KillAfter    time.Duration `json:"kill_after_ns"` // from the start of the load to the kill
	Duration     time.Duration `json:"duration_ns"`   // the small requests' run
	Advert       time.Duration `json:"advert_ns"`     // keepalived's advert_int
	Death        string        `json:"death"`         // DeathProcess or DeathHost; "": DeathHost
}

// withDefaults returns c with zero fields set to the defaults, or an error.
func (c Config) withDefaults() (Config, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Downloads, DefaultDownloads)
	def(&c.DownloadRate, DefaultDownloadRate)
	for _, f := range []struct {
		v *time.Duration
		d time.Duration
	}{{&c.Timeout, DefaultTimeout}, {&c.KillAfter, DefaultKillAfter}, {&c.Duration, DefaultDuration}, {&c.Advert, DefaultAdvert}} {
		if *f.v == 0 {
			*f.v = f.d
		}
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Death == "" {
		c.Death = DeathHost
	}
	if c.Wsbench == "" || c.Downloads < 0 || c.DownloadRate < 0 || c.Rate < 0 || c.Timeout < 0 ||
		c.KillAfter < 0 || c.Duration <= c.KillAfter || c.Advert < 10*time.Millisecond ||
		c.Death != DeathProcess && c.Death != DeathHost {
		return c, fmt.Errorf("%w: %+v", ErrConfig, c)
	}
	return c, nil
}

// SiteConfig returns the site the trials run in: two switches announcing
// the VIP by BGP to a BIRD router, one pool of both back-ends, which serve
// their files on their direct listeners too (for HAProxy).
func SiteConfig() site.Config {
	return site.Config{Switches: 2, Router: testbed.RouterBIRD, BGP: true, Balanced: true,
		DirectPort: scenario.DirectPort, Offloads: true, Shards: 1}
}

// Files returns the files both back-ends must serve; the same at every call.
func Files() map[string][]byte {
	return map[string][]byte{BigFile: body(bigSize, 'b'), SmallFile: body(smallSize, 's')}
}

// body returns n pseudo-random bytes from a fixed seed.
func body(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{'f', 'a', 'i', 'l', seed}).Read(b)
	return b
}

// bigSum is BigFile's SHA-256.
var bigSum = sync.OnceValue(func() [sha256.Size]byte { return sha256.Sum256(body(bigSize, 'b')) })

// Trial is what one setup's clients lost.
type Trial struct {
	Setup           string `json:"setup"`
	Downloads       int    `json:"downloads"`
	DownloadsBroken int    `json:"downloads_broken"` // failed, or not byte-exact
	// DownloadStatus says of each download when it ended (from the
	// start of the load), the bytes it got, and what went wrong.
	DownloadStatus []string `json:"download_status"`
	// The small requests: succeeded, failed (all kinds of load.Result's
	// errors), the longest that succeeded (from its intended start).
	Requests       uint64  `json:"requests"`
	RequestsFailed uint64  `json:"requests_failed"`
	LongestMs      float64 `json:"longest_ms"`
	// RecoverySecs is the time from the kill until a new connection
	// succeeds again for good: the end of the first probe that succeeded
	// after the last that failed (probes one after the other, each a new
	// connection with a 200 ms limit); 0 if none failed. Recovered is
	// false if the probes never succeeded again.
	RecoverySecs float64     `json:"recovery_seconds"`
	Recovered    bool        `json:"recovered"`
	Probes       int         `json:"probes"`
	ProbesFailed int         `json:"probes_failed"`
	Load         load.Result `json:"load"`
}

// Result is both trials'.
type Result struct {
	Config    Config `json:"config"`
	HAProxy   Trial  `json:"haproxy"`
	Webswitch Trial  `json:"webswitch"`
}

// Run runs both trials in s, a site from SiteConfig serving Files:
// webswitch's, then, with its switches stopped, the HAProxy pair's.
func Run(s *site.Site, cfg Config) (res Result, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return res, err
	}
	res.Config = cfg
	if err := s.TB.Do("cli", func() error {
		return os.WriteFile("/proc/sys/net/ipv4/tcp_rmem", []byte(clientRmem+"\n"), 0)
	}); err != nil {
		return res, fmt.Errorf("failover: the client's tcp_rmem: %w", err)
	}
	res.Webswitch, err = trial(s, cfg, SetupWebswitch, func() error {
		return errors.Join(cut(s.TB, cfg.Death, "sw", true), s.KillSwitchN(0))
	})
	if err != nil {
		return res, err
	}
	if err := cut(s.TB, cfg.Death, "sw", false); err != nil {
		return res, err
	}
	if err := s.Switches[1].Stop(); err != nil {
		return res, fmt.Errorf("failover: stop switch 2: %w", err)
	}
	if _, err := s.TB.WaitVIPNextHops(0, 10*time.Second); err != nil {
		return res, err
	}
	nodes, err := startPair(s.TB, filepath.Join(s.Dir, "pair"), cfg.Advert)
	if err != nil {
		return res, err
	}
	if err := waitMaster(s.TB, 10*time.Second); err != nil {
		return res, err
	}
	res.HAProxy, err = trial(s, cfg, SetupHAProxy, func() error {
		err := cut(s.TB, cfg.Death, "sw", true)
		nodes[0].kill()
		return err
	})
	return res, err
}

// cutTable is the nftables table of the LAN's namespace that cuts a host
// off.
const cutTable = "failover_cut"

// cut, with DeathHost, makes the LAN's bridge drop every frame from or to
// host's eth0 (on), or deletes that rule (!on); with DeathProcess it does
// nothing. Setting the host's port down instead would flush the bridge's
// entries for its MAC and flood the frames still sent to it to every port,
// where a switch listening on its ring would take them (webswitch's rings
// see frames for other MACs).
func cut(tb *testbed.Testbed, death, host string, on bool) error {
	if death != DeathHost {
		return nil
	}
	if !on {
		_, err := tb.Run("lan", "nft", "delete", "table", "bridge", cutTable)
		return err
	}
	mac, err := tb.Run(host, "cat", "/sys/class/net/eth0/address")
	if err != nil {
		return err
	}
	mac = strings.TrimSpace(mac)
	cmd := tb.Command("lan", "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`table bridge %s {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ether saddr %s drop
        ether daddr %s drop
    }
}
`, cutTable, mac, mac))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failover: nft: %w: %s", err, out)
	}
	return nil
}

// waitMaster waits until the VIP is on sw's eth0 (keepalived's master)
// and not on sw2's (the backup, which would be master too if it did not
// hear sw's adverts), and a request through it succeeds.
func waitMaster(tb *testbed.Testbed, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hasVIP := func(host string) (bool, string) {
		addrs, _ := tb.Run(host, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		return strings.Contains(addrs, " "+testbed.VIP+"/"), addrs
	}
	for {
		master, addrs := hasVIP("sw")
		backup, addrs2 := hasVIP("sw2")
		code, _ := tb.Run("cli", "curl", "-sS", "-m", "1", "-o", "/dev/null", "-w", "%{http_code}", site.VIPURL+"/"+SmallFile)
		if master && !backup && code == "200" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("failover: the HAProxy pair not serving through sw alone after %v: sw's eth0: %s; sw2's: %s; GET: %s",
				timeout, addrs, addrs2, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// trial runs the load, kills a node with kill after cfg.KillAfter, and
// says what the clients lost.
func trial(s *site.Site, cfg Config, setup string, kill func() error) (t Trial, err error) {
	t.Setup, t.Downloads = setup, cfg.Downloads
	logPath := filepath.Join(s.Dir, setup+"-load.log")
	client, err := s.TB.Start("cli", logPath, cfg.Wsbench, "load", "-json", "-url", site.VIPURL+"/"+SmallFile,
		"-c", strconv.Itoa(int(cfg.Rate*cfg.Timeout.Seconds())+16), "-rate", strconv.FormatFloat(cfg.Rate, 'f', -1, 64),
		"-keepalive=false", "-warmup", "0s", "-d", cfg.Duration.String(), "-timeout", cfg.Timeout.String())
	if err != nil {
		return t, err
	}
	defer func() {
		if err != nil {
			client.Stop()
		}
	}()
	var downloads sync.WaitGroup
	conns, err := dialDownloads(s.TB, cfg.Downloads)
	if err != nil {
		return t, err
	}
	t.DownloadStatus = make([]string, cfg.Downloads)
	ok := make([]bool, cfg.Downloads)
	t0 := time.Now()
	for i, c := range conns {
		downloads.Go(func() { ok[i], t.DownloadStatus[i] = download(c, cfg.DownloadRate, t0) })
	}
	stop := make(chan struct{})
	var samples []sample
	var probeErr error
	var probing sync.WaitGroup
	probing.Go(func() { samples, probeErr = probe(s.TB, "/"+SmallFile, stop) })

	time.Sleep(cfg.KillAfter)
	killErr := kill()
	killed := time.Now()
	werr := client.Wait()
	close(stop)
	probing.Wait()
	downloads.Wait()
	if err := errors.Join(killErr, probeErr); err != nil {
		return t, err
	}
	if werr != nil {
		return t, fmt.Errorf("failover: the small requests' client: %w", werr)
	}
	if t.Load, err = load.ReadResult(logPath); err != nil {
		return t, err
	}
	for _, ok := range ok {
		if !ok {
			t.DownloadsBroken++
		}
	}
	t.Requests, t.LongestMs = t.Load.Requests, t.Load.Latency.Max
	for _, n := range t.Load.Errors {
		t.RequestsFailed += n
	}
	d, failed, recovered := outage(samples, killed)
	t.RecoverySecs, t.ProbesFailed, t.Recovered, t.Probes = d.Seconds(), failed, recovered, len(samples)
	return t, nil
}
