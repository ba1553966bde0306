// Package conf loads and validates the TOML configuration files of the
// switch (LoadSwitch) and of the back-end agent (LoadAgent), and the shared
// secret they authenticate each other with (LoadSecret). It is the one
// place for each configuration fact: the domain values it builds come from
// the domain packages' own parsers and checks (Switch.L7Pools and L7Rules
// with l7's), and a reload:"restart" tag marks each key a running switch
// cannot change (Switch.RestartKeys).
//
// Decoding is strict: a key the schema does not know is an error, and so is
// a value of the wrong TOML type. Every error is an *Error that names the
// file, the key path (like "switch.vip" or "backend[2].address", array
// indices counted from 0) and, when the key appears in the file, its line.
// A key that is required but missing is reported at the line of the table
// that should hold it. Loading stops at the first error.
//
// testdata/switch.toml and testdata/agent.toml are complete, commented
// examples of both files; testdata/switch-bgp.toml is a switch of a
// cluster, with [bgp].
package conf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// Error is a configuration error: file, 1-based line (0 if unknown), key
// path and message.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
	// Err is the underlying error, if any (for example the one returned by
	// os.ReadFile); Unwrap returns it.
	Err error
}

// Error formats e as "FILE:LINE: KEY: MSG", leaving out ":LINE" when the
// line is unknown (0) and "KEY: " when no key is concerned.
func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Key != "" {
		s += ": " + e.Key
	}
	return s + ": " + e.Msg
}

// Unwrap returns the underlying error, or nil.
func (e *Error) Unwrap() error { return e.Err }

// fileError wraps an error reading file. The message drops the path that
// *fs.PathError repeats, since Error already starts with it.
func fileError(file string, err error) *Error {
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = pe.Op + ": " + pe.Err.Error()
	}
	return &Error{File: file, Msg: msg, Err: err}
}

// Duration is a time.Duration written as a string like "250ms" or "2s" in
// TOML (any string time.ParseDuration accepts).
type Duration struct{ time.Duration }

// UnmarshalText parses a duration string such as "1m30s".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a number with a unit, like \"250ms\" or \"2s\"", text)
	}
	d.Duration = v
	return nil
}

// MarshalText formats d the way UnmarshalText reads it.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// MinSecretLen is the minimum length in bytes of a shared secret.
const MinSecretLen = 16

// LoadSecret reads a shared secret file. Trailing whitespace (such as the
// final newline an editor adds) is not part of the secret. A secret shorter
// than MinSecretLen bytes, or a file that cannot be read, is an *Error
// naming the file.
func LoadSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	secret := bytes.TrimRight(data, " \t\r\n\v\f")
	if len(secret) < MinSecretLen {
		return nil, &Error{File: path, Msg: fmt.Sprintf("secret is %d bytes long, want at least %d", len(secret), MinSecretLen)}
	}
	return secret, nil
}
