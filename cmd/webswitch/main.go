// Command webswitch is the layer-7 one-way Web switch daemon: it owns the
// VIP at layer 2, completes TCP handshakes itself, reads each request, picks
// a back-end by content and hands the connection off to that back-end's
// agent; responses go from the back-end straight to the client.
//
//	webswitch [-config /etc/webswitch/switch.toml] [-log-level info] [-log-format json] [-cpuprofile FILE]
//	webswitch ctl [-admin ADDR] backends | flows [...] | reload | capture -n N -o FILE
//
// SIGUSR1 logs every shard's counters; SIGHUP reloads the configuration
// file (new rules, pools, back-ends and timeouts for new connections; a
// file with errors, or one that changes a key needing a restart, is
// refused and logged, and the running configuration stays); SIGINT or
// SIGTERM stops it. With [admin] listen set, the admin API serves
// Prometheus metrics and what `webswitch ctl` shows.
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
	os.Exit(run())
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
// (the CPU profile) is done.
func run() int {
	configPath := flag.String("config", "/etc/webswitch/switch.toml", "configuration file")
	level := flag.String("log-level", "info", "log level: debug, info, warn, error")
	format := flag.String("log-format", "json", "log format: json, or console for a terminal")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to this file")
	flag.Parse()
	log, err := newLogger(os.Stderr, *level, *format)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2
	}

	c, err := conf.LoadSwitch(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2
	}
	// The secret is read at start only (control.secret_file needs a
	// restart): a reload keeps it.
	secret, err := conf.LoadSecret(c.Control.SecretFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2
	}
	cfg, err := dataPathConfig(*configPath, c, secret)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2
	}
	sw, err := shard.New(cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("start")
		return 1
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Error().Err(err).Msg("cpu profile")
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Error().Err(err).Msg("cpu profile")
			return 1
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
	go drain(sw, term, stop, log)
	if a := c.Admin.Listen; a.IsValid() {
		l, err := net.Listen("tcp", a.String())
		if err != nil {
			log.Error().Err(err).Msg("admin listener")
			return 1
		}
		srv := &http.Server{Handler: adminHandler(sw, reload), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("admin server")
			}
		}()
		defer srv.Close()
		log.Info().Stringer("listen", l.Addr()).Msg("admin API")
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			reload()
		}
	}()
	dump := make(chan os.Signal, 1)
	signal.Notify(dump, syscall.SIGUSR1) // log the shards' counters now
	if err := sw.Run(ctx, dump); err != nil {
		log.Error().Err(err).Msg("run")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
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

// drain waits for a stop signal, then drains the switch: new connections
// are refused while the flows in the table go on, until none is left, the
// drain timeout (the running configuration's, when the signal comes)
// passes, or a second signal comes; then it calls stop.
func drain(sw *shard.Switch, term <-chan os.Signal, stop func(), log zerolog.Logger) {
	sig := <-term
	timeout := sw.Config().DrainTimeout
	log.Info().Stringer("signal", sig).Int64("flows", sw.ActiveFlows()).Dur("drain_timeout", timeout).
		Msg("draining: new connections refused, the flows in the table go on")
	sw.Drain()
	deadline := time.After(timeout)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	next := time.Now().Add(drainProgress)
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
			if now.After(next) {
				log.Info().Int64("flows", n).Msg("draining")
				next = now.Add(drainProgress)
			}
		}
	}
}
