package testbed

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// HandleSignals makes the first SIGINT or SIGTERM tear the testbed down and
// then exit the process with status 130. It is meant for commands (the CLI,
// the demo); tests use t.Cleanup(tb.Down) instead.
func (tb *Testbed) HandleSignals() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-c
		fmt.Fprintf(os.Stderr, "testbed: %v: tearing down %s\n", sig, tb.Prefix)
		if err := tb.Down(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(130)
	}()
}
