// Command webswitch is the layer-7 one-way Web switch daemon: it owns the
// VIP at layer 2, completes TCP handshakes itself, reads each request, picks
// a back-end by content and hands the connection off to that back-end's
// agent; responses go from the back-end straight to the client.
//
//	webswitch -config /etc/webswitch/switch.toml [-log-level info] [-cpuprofile FILE]
//
// SIGUSR1 logs every shard's counters; SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/rs/zerolog"

	"webswitch/conf"
	"webswitch/shard"
)

func main() { os.Exit(run()) }

// run is the daemon; it returns the exit status once every deferred step
// (the CPU profile) is done.
func run() int {
	configPath := flag.String("config", "/etc/webswitch/switch.toml", "configuration file")
	level := flag.String("log-level", "info", "log level: debug, info, warn, error")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to this file")
	flag.Parse()
	lvl, err := zerolog.ParseLevel(*level)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: -log-level: %v\n", err)
		return 2
	}
	log := zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Str("app", "webswitch").Logger()

	c, err := conf.LoadSwitch(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2
	}
	secret, err := conf.LoadSecret(c.Control.SecretFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %v\n", err)
		return 2
	}
	cfg, err := shard.FromConf(c, secret)
	if err != nil {
		fmt.Fprintf(os.Stderr, "webswitch: %s: %v\n", *configPath, err)
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dump := make(chan os.Signal, 1)
	signal.Notify(dump, syscall.SIGUSR1) // log the shards' counters now
	if err := sw.Run(ctx, dump); err != nil {
		log.Error().Err(err).Msg("run")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}
