package recovery

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"webswitch/bench/site"
	"webswitch/bench/testbed"
)

// The download that runs across the restart: RestartFile, restartSize
// bytes, fetched at restartRate bytes per second (6 s), the switch killed
// restartAfter after its handoff. The client's kernel takes the first
// few MiB at once into its receive buffer (up to tcp_rmem's 6 MiB), and
// the client sends little while it has room: the file must be well
// larger than that, so that its ACKs flow steadily when the switch dies.
const (
	RestartFile  = "restart.bin"
	restartSize  = 24 << 20
	restartRate  = 4 << 20
	restartAfter = 1500 * time.Millisecond
)

// Polling of a restarted switch: often, for the time to its first
// recovered flow; for at most restartWait.
const (
	restartPoll = 2 * time.Millisecond
	restartWait = 20 * time.Second
	handoffWait = 5 * time.Second
)

// Files returns the files the back-ends must serve for Restart (to put in
// both document roots). The content is the same at every call.
func Files() map[string][]byte {
	return map[string][]byte{RestartFile: restartBody()}
}

// restartBody returns RestartFile's content: pseudo-random bytes from a
// fixed seed.
func restartBody() []byte {
	b := make([]byte, restartSize)
	rand.NewChaCha8([32]byte{'r', 'e', 's', 't', 'a', 'r', 't'}).Read(b)
	return b
}

// RestartResult is what Restart measured. The times are from the moment
// the new switch process was started (right after the old one was reaped).
type RestartResult struct {
	// AdminSecs is the time to the first answer of the new switch's
	// /metrics; ReadySecs to the poll that saw every shard's control
	// connections to the agents up (backend_usable as before the kill),
	// FrameSecs to the one that saw the first segment of a connection it
	// had no entry for (asked about, or dropped as no_agent,
	// recovery_full or recovery_rate), FirstSecs to the one that saw its
	// first flow recovered by lookup (each within restartPoll). The first
	// recovery waits for a segment of the download's client, which sends
	// only when it has read enough of its receive buffer to open its
	// window again.
	AdminSecs float64 `json:"admin_seconds"`
	ReadySecs float64 `json:"ready_seconds"`
	FrameSecs float64 `json:"first_segment_seconds"`
	FirstSecs float64 `json:"first_recovered_seconds"`
	// Switch are the new switch's counters when the download ended.
	Switch Counters `json:"switch"`
	// DownloadOK says the download completed with the right content.
	DownloadOK bool   `json:"download_ok"`
	Download   string `json:"download"` // curl's status, size and time, or its error
}

// Restart kills the site's switch with SIGKILL during a download through
// it, starts it again with the same arguments, and measures the time to
// the new switch's first recovered flow. The back-ends must serve Files and
// the site come from SiteConfig. The download must then complete intact.
// The new switch becomes s.Switch; the testbed stops it on Down.
func Restart(s *site.Site) (res RestartResult, err error) {
	sc := newScraper(s.TB)
	defer sc.close()
	before, err := sc.scrape()
	if err != nil {
		return res, fmt.Errorf("recovery: the switch's /metrics (site from SiteConfig?): %w", err)
	}
	dl, err := startDownload(s.TB)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			dl.cmd.Process.Kill()
			<-dl.done
		}
	}()
	for deadline := time.Now().Add(handoffWait); ; {
		c, err := sc.scrape()
		if err != nil {
			return res, err
		}
		if c.HandoffsOK > before.HandoffsOK {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("recovery: the download was not handed off within %v", handoffWait)
		}
		time.Sleep(pollEvery)
	}
	time.Sleep(restartAfter)
	if dl.ended() {
		_, status := dl.wait()
		return res, fmt.Errorf("recovery: the download ended before the switch was killed: %s", status)
	}

	sc.close()
	start, started, err := restartSwitch(s)
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := <-started; serr != nil && err == nil {
			err = fmt.Errorf("recovery: the restarted switch: %w", serr)
		}
	}()
	for deadline := start.Add(restartWait); ; time.Sleep(restartPoll) {
		c, err := sc.scrape()
		now := time.Now()
		switch {
		case err != nil: // not listening yet
		case res.AdminSecs == 0:
			res.AdminSecs = now.Sub(start).Seconds()
			fallthrough
		default:
			res.Switch = c
			if c.Usable >= before.Usable && res.ReadySecs == 0 {
				res.ReadySecs = now.Sub(start).Seconds()
			}
			if unknown(c) > 0 && res.FrameSecs == 0 {
				res.FrameSecs = now.Sub(start).Seconds()
			}
		}
		if res.Switch.Lookup > 0 {
			res.FirstSecs = now.Sub(start).Seconds()
			break
		}
		if dl.ended() || now.After(deadline) {
			status := "still running"
			if dl.ended() {
				_, status = dl.wait()
			}
			return res, fmt.Errorf("recovery: the restarted switch recovered no flow within %.1f s (admin up after %.3f s; download: %s)",
				now.Sub(start).Seconds(), res.AdminSecs, status)
		}
	}
	res.DownloadOK, res.Download = dl.wait()
	if res.Switch, err = sc.scrape(); err != nil {
		return res, err
	}
	return res, nil
}

// restartSwitch kills the switch (site.KillSwitch) and starts it again
// (site.StartSwitch) on another goroutine: StartSwitch returns only once
// requests through the VIP succeed, too late for the times Restart
// measures. It returns the time the start began and the channel that
// gets StartSwitch's result.
func restartSwitch(s *site.Site) (time.Time, <-chan error, error) {
	if err := s.KillSwitch(); err != nil {
		return time.Time{}, nil, fmt.Errorf("recovery: kill the switch: %w", err)
	}
	started := make(chan error, 1)
	start := time.Now()
	go func() { started <- s.StartSwitch() }()
	return start, started, nil
}

// unknown counts the segments of connections the switch had no entry
// for that it asked about or dropped before asking.
func unknown(c Counters) uint64 {
	return c.Asked + c.Drops["no_agent"] + c.Drops["recovery_full"] + c.Drops["recovery_rate"]
}

// download is curl fetching RestartFile through the VIP in the client
// namespace, its output hashed.
type download struct {
	cmd  *exec.Cmd
	body hash.Hash
	meta bytes.Buffer
	done chan struct{} // closed when curl has exited, err set
	err  error
}

// startDownload starts the download.
func startDownload(tb *testbed.Testbed) (*download, error) {
	d := &download{body: sha256.New()}
	d.cmd = tb.Command("cli", "curl", "-sS", "-m", "60", "--limit-rate", strconv.Itoa(restartRate),
		"-w", "%{stderr}%{http_code} %{size_download} bytes in %{time_total} s", site.VIPURL+"/"+RestartFile)
	d.cmd.Stdout, d.cmd.Stderr = d.body, &d.meta
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("recovery: curl: %w", err)
	}
	d.done = make(chan struct{})
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// ended reports whether curl has exited.
func (d *download) ended() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// wait waits for curl and says whether it got the whole file intact, and
// its status line or error.
func (d *download) wait() (bool, string) {
	<-d.done
	err := d.err
	meta := strings.TrimSpace(d.meta.String())
	if err != nil {
		return false, fmt.Sprintf("curl: %v: %s", err, meta)
	}
	want := sha256.Sum256(restartBody())
	if got := d.body.Sum(nil); !bytes.Equal(got, want[:]) {
		return false, fmt.Sprintf("%s, SHA-256 %s, want %s", meta, hex.EncodeToString(got), hex.EncodeToString(want[:]))
	}
	return true, meta
}
