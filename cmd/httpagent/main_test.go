package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHello(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/any/path", nil)
	r.RemoteAddr = "198.18.0.10:40312"
	w := httptest.NewRecorder()
	hello(w, r)
	if got, want := w.Body.String(), "hello from httpagent, you are 198.18.0.10:40312\n"; w.Code != http.StatusOK || got != want {
		t.Errorf("hello = %d %q, want 200 %q", w.Code, got, want)
	}
}
