// Command webswitch is the layer-7 one-way Web switch daemon: it owns the
// VIP at layer 2 (or, with [bgp], announces it to the routers in front of
// a cluster of switches while it can serve), completes TCP handshakes
// itself, reads each request, picks a back-end by content and hands the
// connection off to that back-end's agent; responses go from the back-end
// straight to the client.
//
//	webswitch [-config /etc/webswitch/switch.toml] [-log-level info] [-log-format json] [-cpuprofile FILE]
//	webswitch -check [-config FILE ...]   check the configuration (and the flags), print the version
//	webswitch -version
//	webswitch ctl [-admin ADDR] backends | flows [...] | reload | upgrade [-timeout 30s] | capture -n N -o FILE | bgp
//
// SIGUSR1 logs every shard's counters; SIGHUP reloads the configuration
// file (new rules, pools, back-ends and timeouts for new connections; a
// file with errors, or one that changes a key needing a restart, is
// refused and logged, and the running configuration stays); SIGINT or
// SIGTERM stops it, draining first (with [bgp], after withdrawing the
// VIP). SIGUSR2 (or `webswitch ctl upgrade`)
// upgrades in place: the binary now at the path webswitch was started as
// is run with -check and the same flags; if it accepts them, the VIP is
// withdrawn ([bgp]), the data path stops and that binary is executed with the same arguments and
// environment, keeping the PID; if not, the error is logged and this
// process carries on. Spliced flows are not handed over: the new process
// recovers them (docs/reliability.md, "Upgrade"). With [admin] listen set,
// the admin API serves Prometheus metrics and what `webswitch ctl` shows.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"webswitch/conf"
	"webswitch/shard"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ctl" {
		os.Exit(ctl(os.Args[2:], os.Stdout, os.Stderr))
	}
	status, upgrade := run()
	if upgrade != nil {
		status = upgrade.exec()
	}
	os.Exit(status)
}

// newLogger returns the daemon's logger: JSON lines, or a console format
// for a terminal.
func newLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("-log-level: %w", err)
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339Nano}
	default:
		return zerolog.Logger{}, fmt.Errorf("-log-format: %q is not json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("app", "webswitch").Logger(), nil
}

// run is the daemon; it returns the exit status once every deferred step
// (the CPU profile) is done, and the upgrader when an upgrade stopped the
// data path: main then executes the new binary.
func run() (int, *upgrader) {
	start := time.Now()
	upgraded := takeUpgradeRecord()
	// Before anything slow: SIGUSR2's default action would end the process.
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	configPath := flag.String("config", "/etc/webswitch/switch.toml", "configuration file")
	level := flag.String("log-level", "info", "log level: debug, info, warn, error")
	format := flag.String("log-format", "json", "log format: json, or console for a terminal")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to this file")
	check := flag.Bool("check", false, "check the configuration with the other flags, print the version, and exit: 0 if good, 2 with the error if not")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("webswitch %s\n", buildVersion())
		return 0, nil
	}
	log, err := newLogger(os.Stderr, *level, *format)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2, nil
	}

	c, err := conf.LoadSwitch(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2, nil
	}
	// The secret is read at start only (control.secret_file needs a
	// restart): a reload keeps it.
	secret, err := conf.LoadSecret(c.Control.SecretFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2, nil
	}
	cfg, err := dataPathConfig(*configPath, c, secret)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2, nil
	}
	bgp, err := speakerConfig(*configPath, c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2, nil
	}
	if *check {
		fmt.Printf("webswitch %s: %s: configuration ok\n", buildVersion(), *configPath)
		return 0, nil
	}
	up, err := newUpgrader(os.Args, start, upgraded, log)
	if err != nil {
		log.Error().Err(err).Msg("start")
		return 1, nil
	}
	sw, err := shard.New(cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("start")
		return 1, nil
	}
	cl, err := startCluster(bgp, log)
	if err != nil {
		log.Error().Err(err).Msg("start")
		return 1, nil
	}
	defer cl.stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Error().Err(err).Msg("cpu profile")
			return 1, nil
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Error().Err(err).Msg("cpu profile")
			return 1, nil
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	var reloadMu sync.Mutex
	reload := func() error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		nc, err := conf.LoadSwitch(*configPath)
		var next *shard.Config
		if err == nil {
			err = c.RestartKeys(nc, *configPath)
		}
		if err == nil {
			next, err = dataPathConfig(*configPath, nc, secret)
		}
		if err == nil {
			err = sw.Reload(next)
		}
		if err != nil {
			log.Error().Err(err).Msg("reload refused: the running configuration stays")
			return err
		}
		log.Info().Str("config", *configPath).Msg("configuration reloaded")
		return nil
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	term := make(chan os.Signal, 2)
	signal.Notify(term, syscall.SIGINT, syscall.SIGTERM)
	quiet := time.Duration(0)
	if cl.routed() {
		quiet = drainQuiet
	}
	go drain(sw, cl.leave, quiet, term, stop, log)
	go cl.follow(ctx, sw.Serving)
	up.draining, up.leave, up.stopData = sw.Draining, cl.leave, stop
	up.stopAdmin = func(context.Context) error { return nil }
	if upgraded != nil { // the rings are open: what the gap ends with
		upgraded.Gap = time.Since(upgraded.Stopped)
		log.Info().Str("from", upgraded.From).Str("version", buildVersion()).Dur("gap", upgraded.Gap).
			Dur("old_stop", upgraded.Exec.Sub(upgraded.Stopped)).Dur("exec", start.Sub(upgraded.Exec)).Dur("new_start", time.Since(start)).
			Msg("upgraded in place: data path starting")
	}
	if a := c.Admin.Listen; a.IsValid() {
		l, err := net.Listen("tcp", a.String())
		if err != nil {
			log.Error().Err(err).Msg("admin listener")
			return 1, nil
		}
		srv := &http.Server{Handler: adminHandler(sw, reload, up, cl.status()), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("admin server")
			}
		}()
		defer srv.Close()
		up.stopAdmin = srv.Shutdown
		log.Info().Stringer("listen", l.Addr()).Msg("admin API")
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			reload()
		}
	}()
	go func() {
		for range usr2 {
			up.Upgrade() // logs its outcome
		}
	}()
	dump := make(chan os.Signal, 1)
	signal.Notify(dump, syscall.SIGUSR1) // log the shards' counters now
	if err := sw.Run(ctx, dump); err != nil {
		log.Error().Err(err).Msg("run")
		return 1, nil
	}
	switch {
	case up.accepted() && sw.Draining():
		log.Info().Msg("stopped: a stop signal came during the upgrade")
	case up.accepted():
		return 0, up
	default:
		log.Info().Msg("stopped")
	}
	return 0, nil
}

// dataPathConfig builds the data path's configuration from the file read
// at path.
func dataPathConfig(path string, c *conf.Switch, secret []byte) (*shard.Config, error) {
	cfg, err := shard.FromConf(c, secret)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// drainProgress is how often a drain logs the flows it waits for.
const drainProgress = time.Second

// drainable is what drain needs of the data path (a *shard.Switch; a
// fake in tests).
type drainable interface {
	Config() *shard.Config
	Drain()
	ActiveFlows() int64
	FramesIn() uint64
}

// drainQuiet ends the drain of a switch that withdrew the VIP (with
// [bgp]) once no frame has come for this long: the routers send its flows
// to the other switches, which recover them, so their ends never come
// here and the flow table does not empty before drain_timeout.
const drainQuiet = 2 * time.Second

// drain waits for a stop signal, then drains the switch: it leaves its
// cluster first (with [bgp]: the VIP is withdrawn, and the routers move
// the flows to the other switches), then new connections are refused while
// the flows in the table go on, until none is left, the drain timeout (the
// running configuration's, when the signal comes) passes, or a second
// signal comes; then it calls stop.
func drain(sw drainable, leave func(), quiet time.Duration, term <-chan os.Signal, stop func(), log zerolog.Logger) {
	sig := <-term
	leave()
	timeout := sw.Config().DrainTimeout
	log.Info().Stringer("signal", sig).Int64("flows", sw.ActiveFlows()).Dur("drain_timeout", timeout).
		Msg("draining: new connections refused, the flows in the table go on")
	sw.Drain()
	deadline := time.After(timeout)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	next := time.Now().Add(drainProgress)
	frames, heard := sw.FramesIn(), time.Now()
	for {
		select {
		case sig := <-term:
			log.Warn().Stringer("signal", sig).Int64("flows", sw.ActiveFlows()).Msg("second signal: stopping now")
			stop()
			return
		case <-deadline:
			log.Warn().Int64("flows", sw.ActiveFlows()).Msg("drain timeout: stopping with the flows left")
			stop()
			return
		case now := <-poll.C:
			n := sw.ActiveFlows()
			if n == 0 {
				log.Info().Msg("drained: no flow left")
				stop()
				return
			}
			if f := sw.FramesIn(); f != frames {
				frames, heard = f, now
			} else if quiet > 0 && now.Sub(heard) >= quiet {
				log.Info().Int64("flows", n).Dur("quiet", quiet).Msg("drained: no frame since the VIP was withdrawn; the other switches have the flows")
				stop()
				return
			}
			if now.After(next) {
				log.Info().Int64("flows", n).Msg("draining")
				next = now.Add(drainProgress)
			}
		}
	}
}
