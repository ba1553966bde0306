package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// version is the build's version, set with
// -ldflags "-X main.version=V"; empty: the VCS revision go build recorded
// (see buildVersion).
var version string

// buildVersion returns version, else the first 12 digits of the VCS
// revision ("-dirty" when the tree had changes), else "devel" (built with
// -buildvcs=false, or outside version control).
func buildVersion() string {
	if version != "" {
		return version
	}
	rev, dirty := "", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value[:min(12, len(s.Value))]
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return rev + dirty
}

// Identity is what GET /version answers: which process runs, since when,
// and from which binary. An in-place upgrade keeps PID and changes
// Started (and, with a new binary, Version and SHA256).
type Identity struct {
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	Version    string    `json:"version"`
	SHA256     string    `json:"sha256"`     // of the running binary's file
	Executable string    `json:"executable"` // what an upgrade runs
	// Upgrade is set when this process was started by an upgrade.
	Upgrade *UpgradeRecord `json:"upgrade,omitempty"`
}

// String names the build: its version and the start of its hash.
func (id Identity) String() string {
	return fmt.Sprintf("%s (sha256 %.12s)", id.Version, id.SHA256)
}

// UpgradeRecord is what an upgrade passes to the new process, in the
// environment variable upgradeEnv: the old build and when its data path was
// told to stop. The new process then reports the gap.
type UpgradeRecord struct {
	From    string    `json:"from"`    // the old process's build (Identity.String)
	Stopped time.Time `json:"stopped"` // when the old data path was told to stop
	Exec    time.Time `json:"exec"`    // when the old process, stopped, called exec
	// Gap is the time from Stopped until the new process's rings were
	// open: the most that frames waited or were lost. Set by the new
	// process; with Exec and its Started, it splits into the old data
	// path's stop, the exec and the Go runtime's start, and the new data
	// path's set-up (configuration, rings, flow tables).
	Gap time.Duration `json:"gap_ns,omitempty"`
}

// upgradeEnv is the environment variable carrying an UpgradeRecord across
// the exec.
const upgradeEnv = "WEBSWITCH_UPGRADE"

// takeUpgradeRecord returns the record an upgrade left in the
// environment, nil if there is none, and removes it, so that no child and
// no later upgrade sees it.
func takeUpgradeRecord() *UpgradeRecord {
	v, ok := os.LookupEnv(upgradeEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(upgradeEnv)
	var r UpgradeRecord
	if json.Unmarshal([]byte(v), &r) != nil {
		return nil
	}
	return &r
}

// Errors of upgrader.Upgrade besides a refused check.
var (
	errUpgradeBusy     = errors.New("an upgrade is already under way")
	errUpgradeDraining = errors.New("the switch is stopping (draining)")
)

// checkTimeout bounds the new binary's -check run.
const checkTimeout = 10 * time.Second

// adminShutdown bounds the wait for the admin API's requests (the
// /upgrade answer) before an upgrade stops the data path.
const adminShutdown = time.Second

// upgrader is the in-place upgrade: it checks the binary now at the path
// the daemon was started as (running it with -check and the daemon's
// arguments), stops the admin API, leaves the cluster (with [bgp]: the VIP
// is withdrawn, and the routers move the flows to the other switches,
// which recover them), stops the data path, and re-executes that binary with the same arguments and environment, so that
// the PID stays. One upgrade at a time; none while the switch drains.
type upgrader struct {
	id   Identity // this process; Executable is the binary to run
	args []string // the daemon's command line, program name first
	log  zerolog.Logger
	hash func() (string, error) // the running binary's SHA-256, computed once

	// Set by run before any upgrade can be asked for.
	draining  func() bool // a stop signal came
	stopAdmin func(context.Context) error
	leave     func() // withdraws the VIP from the routers ([bgp]), before the data path stops
	stopData  func()

	state  atomic.Int32  // upgradeIdle, upgradeChecking, upgradeAccepted
	record UpgradeRecord // for the new process; complete before stopData
}

// States of an upgrader.
const (
	upgradeIdle int32 = iota
	upgradeChecking
	upgradeAccepted
)

// newUpgrader returns the upgrader of this process, started with args
// (os.Args) at start; upgraded is the record of the upgrade that started
// it, if one did.
func newUpgrader(args []string, start time.Time, upgraded *UpgradeRecord, log zerolog.Logger) (*upgrader, error) {
	exe, err := selfPath(args[0])
	if err != nil {
		return nil, fmt.Errorf("the binary to run on upgrade: %w", err)
	}
	return &upgrader{
		id:    Identity{PID: os.Getpid(), Started: start, Version: buildVersion(), Executable: exe, Upgrade: upgraded},
		args:  args,
		log:   log,
		hash:  sync.OnceValues(runningHash),
		leave: func() {}, // no [bgp]
	}, nil
}

// selfPath returns the absolute path of the binary the daemon was started
// as: argv[0] as given (resolved against the working directory, or looked
// up in PATH when it has no slash), not the file it resolved to, so that an
// upgrade follows a replaced file or a moved symbolic link. When argv[0]
// names no executable file, the running binary's path.
func selfPath(argv0 string) (string, error) {
	p, err := exec.LookPath(argv0)
	if err != nil {
		return os.Executable()
	}
	return filepath.Abs(p)
}

// runningHash returns the SHA-256 of the running binary's file, even if
// it was replaced since (Linux's /proc/self/exe still opens the old one).
func runningHash() (string, error) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		exe, xerr := os.Executable()
		if xerr != nil {
			return "", err
		}
		if f, err = os.Open(exe); err != nil {
			return "", err
		}
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Identity returns this process's identity.
func (u *upgrader) Identity() Identity {
	id := u.id
	id.SHA256, _ = u.hash()
	return id
}

// Upgrade checks the binary at the upgrade path with the daemon's
// arguments and, if it accepts them, starts the upgrade and returns the
// check's output: the admin API is stopped (after it has sent its
// answers), the VIP withdrawn ([bgp]), then the data path stopped, and run
// returns the upgrader for main to
// exec. A refused check leaves the process as it was; the error carries
// the check's output. Errors are logged.
func (u *upgrader) Upgrade() (string, error) {
	if u.draining() {
		return "", errUpgradeDraining
	}
	if !u.state.CompareAndSwap(upgradeIdle, upgradeChecking) {
		return "", errUpgradeBusy
	}
	from := u.Identity()
	u.log.Info().Str("executable", u.id.Executable).Stringer("from", from).Msg("upgrade: checking the new binary")
	out, err := u.check()
	if err != nil {
		u.state.Store(upgradeIdle)
		u.log.Error().Err(err).Msg("upgrade refused: the running process stays")
		return "", err
	}
	u.state.Store(upgradeAccepted)
	u.record.From = from.String()
	u.log.Info().Str("check", out).Msg("upgrade: new binary checked; stopping the admin API and the data path")
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminShutdown)
		defer cancel()
		u.stopAdmin(ctx) // a request still running after adminShutdown is cut
		u.leave()        // the new process announces the VIP again once it serves
		u.record.Stopped = time.Now()
		u.stopData()
	}()
	return out, nil
}

// check runs the upgrade's binary with -check and the daemon's arguments,
// and returns what it printed.
func (u *upgrader) check() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.id.Executable, append([]string{"-check"}, u.args[1:]...)...)
	b, err := cmd.CombinedOutput()
	out := strings.TrimSpace(string(b))
	switch {
	case err != nil && out != "":
		return "", fmt.Errorf("%s -check: %w: %s", u.id.Executable, err, out)
	case err != nil:
		return "", fmt.Errorf("%s -check: %w", u.id.Executable, err)
	}
	return out, nil
}

// accepted reports whether an upgrade passed its check (and so stops the
// data path).
func (u *upgrader) accepted() bool { return u.state.Load() == upgradeAccepted }

// exec replaces this process with the upgrade's binary, with the daemon's
// arguments and environment and an UpgradeRecord; it returns only when
// that failed, with the exit status (1: the service manager restarts the
// daemon from its unit's binary).
func (u *upgrader) exec() int {
	u.log.Info().Str("executable", u.id.Executable).Msg("upgrade: data path stopped; executing the new binary")
	u.record.Exec = time.Now()
	rec, _ := json.Marshal(u.record)
	env := append(os.Environ(), upgradeEnv+"="+string(rec))
	err := syscall.Exec(u.id.Executable, u.args, env)
	u.log.Error().Err(err).Str("executable", u.id.Executable).Msg("upgrade: exec failed; exiting")
	return 1
}
