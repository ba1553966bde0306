// Command handoffd is the back-end agent of webswitch: it accepts the
// switch's control connections, re-creates each handed-off client connection
// in this host's kernel with TCP_REPAIR, and serves it, either with the
// built-in static file server or by splicing it to a local server. It tells
// a switch that lost its flows which connections this host holds (LOOKUP,
// answered from the kernel with sock_diag).
//
// Usage:
//
//	handoffd -config FILE [-log-level info] [-pid-file FILE]
//	handoffd setup-vip -config FILE | -vip ADDR
//
// setup-vip prepares the back-end, idempotently: the VIP as a /32 on lo,
// net.ipv4.conf.all.arp_ignore=1 and arp_announce=2, saying what it changed.
//
// It logs JSON lines to stderr. A configuration error is printed to stderr
// and exits with status 2. Every second it checks its server (the static
// root is a directory; the upstream accepts a connection) and reports the
// result to the switches, which send no new connections while it fails.
//
// Signals:
//   - SIGUSR1 logs the agent's counters ("agent counters": sessions,
//     handoffs, connections delivered without their OK, flow lookups,
//     rejected control connections by reason).
//   - SIGHUP upgrades in place: a new handoffd (the binary now at the same
//     path, with the configuration file as it is now) starts and inherits the
//     listening sockets; once it is ready, this one stops gracefully as
//     below. If the new one fails to start (a bad configuration, say), this
//     one logs why and carries on.
//   - SIGINT or SIGTERM stop it gracefully: no new control connections;
//     GOAWAY to the switches, which reconnect (to the successor, after an
//     upgrade); the connections being served finish (keep-alive ends after
//     the current response) for up to serve.drain_timeout, then are closed.
//     A second signal closes them at once. Exit status 0.
//
// -pid-file writes the PID of the serving process to FILE (for systemd's
// PIDFile= with ExecReload=kill -HUP $MAINPID).
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/rs/zerolog"

	"webswitch/conf"
	"webswitch/handoff/agent"
	"webswitch/serve"
)

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) > 1 && os.Args[1] == "setup-vip" {
		return setupVIP(os.Args[2:])
	}
	configPath := flag.String("config", "", "agent configuration `file` (TOML)")
	levelName := flag.String("log-level", "info", "log `level`: trace, debug, info, warn or error")
	pidFile := flag.String("pid-file", "", "write the serving process's PID to `file`")
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
	log := zerolog.New(os.Stderr).Level(level).With().Timestamp().Int("pid", os.Getpid()).Logger()

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
	var server serve.Server
	startup := log.Info()
	if root := cfg.Serve.StaticRoot; root != "" {
		if server, err = serve.NewStatic(root); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		startup = startup.Str("mode", "static").Str("root", root)
	} else {
		server = serve.NewUpstream(cfg.Serve.Upstream, serve.ProxyVersion(cfg.Serve.ProxyProtocol))
		startup = startup.Str("mode", "upstream").Str("upstream", cfg.Serve.Upstream)
	}

	// The listening sockets come from the process this one upgrades, if
	// any (tableflip passes them on), else they are opened here.
	upg, err := tableflip.New(tableflip.Options{PIDFile: *pidFile})
	if err != nil {
		log.Error().Err(err).Msg("upgrader")
		return 1
	}
	defer upg.Stop()
	ctl, err := upg.Listen("tcp", cfg.Agent.Listen.String())
	if err != nil {
		log.Error().Err(err).Msg("control listener")
		return 1
	}
	ag, conns := agent.New(secret, cfg.Agent.VIP, log)
	if f := os.Getenv(holdAnswerEnv); f != "" {
		ag.Recreate = holdAnswers(f, ag.Recreate)
		log.Warn().Str(holdAnswerEnv, f).Msg("test hook: answers to HANDOFFs held while the file exists")
	}
	listeners := []net.Listener{conns}
	if cfg.Serve.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Serve.TLSCert, cfg.Serve.TLSKey)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: serve.tls_cert, serve.tls_key: %v\n", *configPath, err)
			return 2
		}
		listeners[0] = serve.NewTLSListener(conns, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
		startup = startup.Str("tls_cert", cfg.Serve.TLSCert)
	}
	if d := cfg.Serve.DirectListen; d.IsValid() {
		direct, err := upg.Listen("tcp", d.String())
		if err != nil {
			log.Error().Err(err).Msg("direct listener")
			return 1
		}
		listeners = append(listeners, direct)
		startup = startup.Stringer("direct_listen", direct.Addr())
	}

	errc := make(chan error, 1+len(listeners))
	go func() { errc <- fmt.Errorf("control: %w", ag.Serve(ctl)) }()
	for _, l := range listeners {
		go func() { errc <- fmt.Errorf("serve %v: %w", l.Addr(), server.Serve(l)) }()
	}
	checkDone := make(chan struct{})
	defer close(checkDone)
	go checkServer(server, ag, log, checkDone)
	if err := upg.Ready(); err != nil {
		log.Error().Err(err).Msg("upgrader ready")
		return 1
	}
	startup.Stringer("listen", ctl.Addr()).Stringer("vip", cfg.Agent.VIP).Bool("upgraded", upg.HasParent()).Msg("handoffd started")

	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGHUP)
	status := -1
	for status < 0 {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				log.Info().Interface("counters", ag.Stats.Snapshot()).Msg("agent counters")
				continue
			}
			log.Info().Msg("upgrading: starting a new handoffd")
			if err := upg.Upgrade(); err != nil {
				log.Error().Err(err).Msg("upgrade failed: this handoffd carries on")
			}
		case <-upg.Exit():
			log.Info().Msg("the new handoffd is ready: stopping")
			status = 0
		case sig := <-stop:
			log.Info().Stringer("signal", sig).Msg("handoffd stopping")
			status = 0
		case err := <-errc:
			log.Error().Err(err).Msg("handoffd stopped")
			status = 1
		}
	}
	drain(ag, conns, server, time.Duration(cfg.Serve.DrainTimeout.Duration), stop, log)
	log.Info().Interface("counters", ag.Stats.Snapshot()).Bool("final", true).Msg("agent counters")
	return status
}

// drain stops gracefully: the switches are told to go away and close their
// control connections (their handoffs in flight are still served), then the
// served connections get up to timeout to finish, or until stop receives.
func drain(ag *agent.Agent, conns *agent.Listener, server serve.Server, timeout time.Duration, stop <-chan os.Signal, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case sig := <-stop:
			log.Warn().Stringer("signal", sig).Msg("drain cut short: closing the connections being served")
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := ag.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("control connections")
	}
	// No more handoffs can come; the server closes its listeners.
	log.Info().Uint32("active", conns.Active()).Dur("timeout", timeout).Msg("draining the connections being served")
	server.Shutdown(ctx)
	if ctx.Err() != nil {
		log.Warn().Uint32("active", conns.Active()).Msg("drain cut short: connections closed")
		return
	}
	log.Info().Msg("drained")
}

// checkInterval is the period of the server's health check.
const checkInterval = time.Second

// checkServer checks the server every checkInterval and reports the result
// to the agent (which tells the switches at once when it changes), until
// done is closed.
func checkServer(server serve.Server, ag *agent.Agent, log zerolog.Logger, done <-chan struct{}) {
	t := time.NewTicker(checkInterval)
	defer t.Stop()
	up := true
	for {
		err := server.Check()
		if (err == nil) != up {
			up = err == nil
			if up {
				log.Info().Msg("server up")
			} else {
				log.Warn().Err(err).Msg("server down: no new connections")
			}
			ag.SetServerUp(up)
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}
