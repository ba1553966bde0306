// Command handoffd is the back-end agent of webswitch: it accepts the
// switch's control connections, re-creates each handed-off client connection
// in this host's kernel with TCP_REPAIR, and serves it, either with the
// built-in static file server or by splicing it to a local server.
//
// Usage:
//
//	handoffd -config FILE [-log-level info]
//
// It logs JSON lines to stderr. A configuration error is printed to stderr
// and exits with status 2; SIGUSR1 logs the agent's counters ("agent
// counters": sessions, handoffs, rejected control connections by reason);
// SIGINT or SIGTERM stops it with status 0.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"webswitch/conf"
	"webswitch/handoff"
)

// vipPort is the port of the handed-off connections' listener address.
const vipPort = 80

func main() {
	os.Exit(run())
}

func run() int {
	configPath := flag.String("config", "", "agent configuration `file` (TOML)")
	levelName := flag.String("log-level", "info", "log `level`: trace, debug, info, warn or error")
	flag.Parse()
	if *configPath == "" || flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	level, err := zerolog.ParseLevel(*levelName)
	if err != nil {
		fmt.Fprintf(os.Stderr, "handoffd: -log-level: %v\n", err)
		return 2
	}
	log := zerolog.New(os.Stderr).Level(level).With().Timestamp().Logger()

	cfg, err := conf.LoadAgent(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	secret, err := conf.LoadSecret(cfg.Agent.SecretFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	ctl, err := net.Listen("tcp", cfg.Agent.Listen.String())
	if err != nil {
		log.Error().Err(err).Msg("control listener")
		return 1
	}
	conns := handoff.NewListener(net.TCPAddrFromAddrPort(netip.AddrPortFrom(cfg.Agent.VIP, vipPort)))
	agent := &handoff.Agent{
		Secret:   secret,
		Recreate: handoff.Recreate,
		Deliver: func(c net.Conn) {
			if !conns.Deliver(c) {
				log.Debug().Stringer("client", c.RemoteAddr()).Msg("handoff after shutdown: connection closed")
			}
		},
		Active: conns.Active,
		Log:    log,
	}

	startup := log.Info().Stringer("listen", ctl.Addr()).Stringer("vip", cfg.Agent.VIP)
	var serve func(net.Listener) error
	if root := cfg.Serve.StaticRoot; root != "" {
		startup = startup.Str("mode", "static").Str("root", root)
		serve = func(l net.Listener) error { return handoff.ServeStatic(l, root) }
	} else {
		up := cfg.Serve.Upstream
		startup = startup.Str("mode", "upstream").Str("upstream", up)
		serve = func(l net.Listener) error { return handoff.ServeUpstream(l, up) }
	}
	listeners := []net.Listener{conns}
	if d := cfg.Serve.DirectListen; d.IsValid() {
		direct, err := net.Listen("tcp", d.String())
		if err != nil {
			log.Error().Err(err).Msg("direct listener")
			return 1
		}
		defer direct.Close()
		listeners = append(listeners, direct)
		startup = startup.Stringer("direct_listen", direct.Addr())
	}
	startup.Msg("handoffd started")

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	errc := make(chan error, 1+len(listeners))
	go func() { errc <- fmt.Errorf("control: %w", agent.Serve(ctl)) }()
	for _, l := range listeners {
		go func() { errc <- fmt.Errorf("serve %v: %w", l.Addr(), serve(l)) }()
	}

	dump := make(chan os.Signal, 1)
	signal.Notify(dump, syscall.SIGUSR1) // log the counters now
	status := -1
	for status < 0 {
		select {
		case <-dump:
			log.Info().Interface("counters", agent.Stats.Snapshot()).Msg("agent counters")
		case sig := <-stop:
			log.Info().Stringer("signal", sig).Msg("handoffd stopping")
			status = 0
		case err := <-errc:
			log.Error().Err(err).Msg("handoffd stopped")
			status = 1
		}
	}
	log.Info().Interface("counters", agent.Stats.Snapshot()).Bool("final", true).Msg("agent counters")
	ctl.Close()
	agent.Close()
	conns.Close()
	return status
}
