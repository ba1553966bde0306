//go:build !linux

package agent

import (
	"errors"

	"webswitch/handoff"
)

var errNoDiag = errors.New("sock_diag lookup: needs Linux")

// Diag looks up which connections this host's kernel holds, for flow
// recovery, with sock_diag. It needs Linux; elsewhere every Lookup fails.
type Diag struct{}

// NewDiag returns a Diag.
func NewDiag() *Diag { return &Diag{} }

// Lookup fails: it needs Linux.
func (d *Diag) Lookup(ids []handoff.FlowID, out []handoff.Owner) ([]handoff.Owner, error) {
	return out, errNoDiag
}

// Close does nothing.
func (d *Diag) Close() error { return nil }
