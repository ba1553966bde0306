package main

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"time"

	"webswitch/handoff"
)

// holdAnswerEnv names a file for the end-to-end tests only: while it
// exists, the agent holds its answer to each HANDOFF after re-creating the
// socket (at most holdAnswerMax), so that a test can kill the switch while
// a handoff is pending (bench/e2e TestPendingHandoff). Unset, nothing
// changes.
const (
	holdAnswerEnv = "HANDOFFD_TEST_HOLD_ANSWER"
	holdAnswerMax = 30 * time.Second
)

// holdAnswers wraps recreate so that it returns only once the file at path
// is gone.
func holdAnswers(path string, recreate func(*handoff.ConnState, []byte) (net.Conn, error)) func(*handoff.ConnState, []byte) (net.Conn, error) {
	return func(st *handoff.ConnState, req []byte) (net.Conn, error) {
		c, err := recreate(st, req)
		for end := time.Now().Add(holdAnswerMax); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		return c, err
	}
}
