//go:build !linux

package agent

import (
	"errors"
	"net"

	"webswitch/handoff"
)

// tuneControl does nothing outside Linux.
func tuneControl(net.Conn) {}

var errNoRepair = errors.New("repair: TCP_REPAIR needs Linux")

// Recreate re-creates a connection the switch accepted with TCP_REPAIR. It
// needs Linux; elsewhere it always fails.
func Recreate(st *handoff.ConnState, request []byte) (net.Conn, error) {
	return nil, errNoRepair
}
