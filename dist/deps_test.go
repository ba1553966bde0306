package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runDeps runs deps.sh with args and a fake apt-get, first in PATH, that
// only logs its arguments. It returns the script's output and the fake's
// log.
func runDeps(t *testing.T, args ...string) (out, aptLog string) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("not Debian: no dpkg-query")
	}
	dir := t.TempDir()
	logFile := filepath.Join(dir, "apt-get.log")
	fake := "#!/bin/sh\necho \"$*\" >>" + logFile + "\n"
	if err := os.WriteFile(filepath.Join(dir, "apt-get"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("./deps.sh", args...)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deps.sh %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	l, err := os.ReadFile(logFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b), string(l)
}

// writeList writes a package list with dpkg, installed on every Debian
// system, and the packages given.
func writeList(t *testing.T, pkgs ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "list.txt")
	text := "# a comment\ndpkg   # the package manager\n\n" + strings.Join(pkgs, "\n") + "\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const noSuchPackage = "webswitch-no-such-package"

// TestDepsDryRun checks that deps.sh -n names exactly the packages that are
// not installed, and runs no apt-get.
func TestDepsDryRun(t *testing.T) {
	out, apt := runDeps(t, "-n", writeList(t, noSuchPackage))
	if out != noSuchPackage+"\n" || apt != "" {
		t.Errorf("deps.sh -n printed %q and ran apt-get %q; want %q and no apt-get", out, apt, noSuchPackage+"\n")
	}
}

// TestDepsNothingMissing checks that with every package installed deps.sh
// prints nothing and runs no apt-get (no network).
func TestDepsNothingMissing(t *testing.T) {
	out, apt := runDeps(t, writeList(t))
	if out != "" || apt != "" {
		t.Errorf("deps.sh printed %q and ran apt-get %q; want neither", out, apt)
	}
}

// TestDepsMissing checks what deps.sh does when a package is missing: as
// root it updates the package lists and installs that package alone;
// otherwise it names it and installs nothing.
func TestDepsMissing(t *testing.T) {
	out, apt := runDeps(t, writeList(t, noSuchPackage))
	if os.Geteuid() != 0 {
		if !strings.Contains(out, "missing Debian packages: "+noSuchPackage+"\n") || apt != "" {
			t.Errorf("deps.sh printed %q and ran apt-get %q; want the missing package named and no apt-get", out, apt)
		}
		return
	}
	want := "update -qq\ninstall -y -qq --no-install-recommends " + noSuchPackage + "\n"
	if apt != want {
		t.Errorf("deps.sh ran apt-get %q, want %q (output %q)", apt, want, out)
	}
}
