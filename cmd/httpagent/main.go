// Command httpagent is an example back-end agent that serves net/http
// handlers itself, in its own process, on the connections the switch hands
// off, where handoffd passes them to a file server or a local server. It is
// the template for serving handed-off connections in-process; copy it and
// put your handlers in place of hello:
//
//   - an agent.Agent accepts the switches' control connections and, for
//     each handoff, re-creates the client's TCP connection in this host's
//     kernel with TCP_REPAIR (agent.Recreate; it needs CAP_NET_ADMIN);
//   - it delivers each connection to an agent.Listener, a net.Listener
//     whose Accept returns them, so any Go server serves them, here
//     http.Server.Serve;
//   - agent.New makes the pair.
//
// The connections are the clients' own: RemoteAddr is the client's real
// address and port (no PROXY header or X-Forwarded-For needed), LocalAddr
// the VIP's, and the responses go from this host straight to the client.
// The request head the switch read has been put back in the connection's
// receive queue, so the server reads the request from its first byte.
//
// Usage:
//
//	httpagent -config FILE
//
// FILE is an agent configuration as handoffd reads it (conf.LoadAgent): the
// [agent] table (listen, vip, secret_file) and serve.drain_timeout are used;
// the rest of [serve] must be valid but is not used. Every request is
// answered "hello from httpagent, you are ADDR:PORT". It logs JSON lines to
// stderr (level info); SIGINT or SIGTERM stop it gracefully: GOAWAY to the switches,
// then the requests being served finish (keep-alive ends after the current
// response) for up to serve.drain_timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"webswitch/conf"
	"webswitch/handoff/agent"
	"webswitch/serve"
)

func main() {
	os.Exit(run())
}

func run() int {
	configPath := flag.String("config", "", "agent configuration `file` (TOML, as handoffd's)")
	flag.Parse()
	if *configPath == "" || flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	cfg, secret, err := load(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()

	ctl, err := net.Listen("tcp", cfg.Agent.Listen.String())
	if err != nil {
		log.Error().Err(err).Msg("control listener")
		return 1
	}
	// The agent, and the handed-off connections as a net.Listener.
	ag, conns := agent.New(secret, cfg.Agent.VIP, log)
	mux := http.NewServeMux()
	mux.HandleFunc("/", hello)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: serve.HeaderTimeout, IdleTimeout: serve.IdleTimeout}

	errc := make(chan error, 2)
	go func() { errc <- fmt.Errorf("control: %w", ag.Serve(ctl)) }()
	go func() { errc <- fmt.Errorf("http: %w", srv.Serve(conns)) }()
	log.Info().Stringer("listen", ctl.Addr()).Stringer("vip", cfg.Agent.VIP).Msg("httpagent started")

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	status := 0
	select {
	case sig := <-stop:
		log.Info().Stringer("signal", sig).Msg("httpagent stopping")
	case err := <-errc:
		log.Error().Err(err).Msg("httpagent stopped")
		status = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Serve.DrainTimeout.Duration)
	defer cancel()
	// First no more handoffs, then the connections being served finish.
	if err := errors.Join(ag.Shutdown(ctx), srv.Shutdown(ctx)); err != nil {
		log.Warn().Err(err).Msg("drain cut short")
	}
	return status
}

// load reads the agent configuration file at path and the secret file it
// names.
func load(path string) (*conf.Agent, []byte, error) {
	cfg, err := conf.LoadAgent(path)
	if err != nil {
		return nil, nil, err
	}
	secret, err := conf.LoadSecret(cfg.Agent.SecretFile)
	return cfg, secret, err
}

// hello answers every request with the client's address as the server sees
// it: r.RemoteAddr comes from the handed-off connection.
func hello(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello from httpagent, you are %s\n", r.RemoteAddr)
}
