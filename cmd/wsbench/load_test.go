package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestLoadBadArguments(t *testing.T) {
	// Each command line is rejected before anything is dialled.
	tests := []struct {
		name       string
		args       []string
		wantUsage  bool // errUsage, else a Config error
		wantStderr string
		wantErr    string
	}{
		{name: "no URL", args: nil, wantUsage: true, wantStderr: "-url is required"},
		{name: "unknown flag", args: []string{"-url", "http://198.18.0.100/", "-bogus"}, wantUsage: true, wantStderr: "-bogus"},
		{name: "bad duration", args: []string{"-url", "http://198.18.0.100/", "-d", "ten"}, wantUsage: true, wantStderr: "invalid value"},
		{name: "positional argument", args: []string{"-url", "http://198.18.0.100/", "extra"}, wantUsage: true, wantStderr: "unexpected arguments: extra"},
		{name: "https", args: []string{"-url", "https://198.18.0.100/"}, wantErr: "only http://"},
		{name: "no connections", args: []string{"-url", "http://198.18.0.100/", "-c", "0"}, wantErr: "Connections"},
		{name: "negative rate", args: []string{"-url", "http://198.18.0.100/", "-rate", "-5"}, wantErr: "Rate"},
		{name: "zero duration", args: []string{"-url", "http://198.18.0.100/", "-d", "0s"}, wantErr: "Duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runLoad(tt.args, &stdout, &stderr)
			switch {
			case err == nil:
				t.Fatalf("runLoad(%q) succeeded", tt.args)
			case errors.Is(err, errUsage) != tt.wantUsage:
				t.Errorf("runLoad(%q): %v; want a usage error: %v", tt.args, err, tt.wantUsage)
			case !strings.Contains(stderr.String(), tt.wantStderr) || !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("runLoad(%q): %v, stderr %q; want %q and %q", tt.args, err, stderr.String(), tt.wantErr, tt.wantStderr)
			}
			if tt.wantUsage && !strings.Contains(stderr.String(), "usage: wsbench load") {
				t.Errorf("runLoad(%q): no usage on stderr:\n%s", tt.args, stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("runLoad(%q) wrote to stdout: %q", tt.args, stdout.String())
			}
		})
	}
}
