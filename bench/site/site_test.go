package site

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadyPaths checks what Start and StartSwitch wait for: a path per
// pool of the site's layout, or the configured ones.
func TestReadyPaths(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"two static pools", Config{}, []string{"/static/", "/"}},
		{"upstream on be2", Config{Upstream: []string{"httpd"}}, []string{"/static/", "/hello"}},
		{"one balanced pool", Config{Balanced: true, Upstream: []string{"httpd"}}, []string{"/"}},
		{"configured", Config{Balanced: true, ReadyPaths: []string{"/a", "/b"}}, []string{"/a", "/b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, readyPaths(tc.cfg)); diff != "" {
				t.Errorf("readyPaths (-want +got):\n%s", diff)
			}
		})
	}
}
