package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"webswitch/bench/site"
)

// runDemo brings up a switch with two back-ends in a fresh testbed, shows
// content-based dispatch and one-way traffic, and tears everything down.
func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "directory with the webswitch and handoffd binaries")
	size := fs.Int("mib", 100, "size of the large download, MiB")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	dir, err := os.MkdirTemp("", "webswitch-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	www1, www2 := filepath.Join(dir, "www1"), filepath.Join(dir, "www2")
	if err := site.WriteFiles(www1, map[string][]byte{"static/logo.txt": []byte("served by be1 (pool static)\n")}); err != nil {
		return err
	}
	if err := site.WriteFiles(www2, map[string][]byte{"index.html": []byte("served by be2 (pool web)\n")}); err != nil {
		return err
	}
	big, err := os.Create(filepath.Join(www1, "static", "big.bin"))
	if err != nil {
		return err
	}
	_, err = io.CopyN(big, rand.Reader, int64(*size)<<20)
	big.Close()
	if err != nil {
		return err
	}
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Bringing up a test network: client, switch, two back-ends (network namespaces)...")
	s, err := site.Start(site.Config{BinDir: binDir, Dir: dir, Static1: www1, Static2: www2, Offloads: true, Shards: 2})
	if err != nil {
		return err
	}
	defer s.Down()
	s.TB.HandleSignals()
	fmt.Fprintf(stdout, "\n%s\n\n", s.TB.Describe())

	fmt.Fprintln(stdout, "1. Content-based dispatch: the switch reads each request and picks the back-end.")
	perBackend := map[string]int{}
	for i := 0; i < 10; i++ {
		for _, path := range []string{"/static/logo.txt", "/"} {
			out, err := s.TB.Run("cli", "curl", "-sS", "-m", "5", site.VIPURL+path)
			if err != nil {
				return fmt.Errorf("GET %s: %v", path, err)
			}
			perBackend[fmt.Sprintf("GET %-17s -> %s", path, strings.TrimSpace(out))]++
		}
	}
	for line, n := range perBackend {
		fmt.Fprintf(stdout, "   %3d x %s\n", n, line)
	}

	fmt.Fprintf(stdout, "\n2. One-way: a %d MiB download; the response goes from be1 straight to the client.\n", *size)
	rx0, tx0, err := s.TB.IfBytes("sw", "eth0")
	if err != nil {
		return err
	}
	out, err := s.TB.Run("cli", "curl", "-sS", "-m", "120", "-o", "/dev/null", "-w", "%{size_download} %{speed_download}", site.VIPURL+"/static/big.bin")
	if err != nil {
		return err
	}
	rx1, tx1, err := s.TB.IfBytes("sw", "eth0")
	if err != nil {
		return err
	}
	var delivered, speed float64
	fmt.Sscan(out, &delivered, &speed)
	crossed := float64(rx1 - rx0 + tx1 - tx0)
	fmt.Fprintf(stdout, "   bytes delivered to the client:       %12.0f\n", delivered)
	fmt.Fprintf(stdout, "   bytes through the switch's interface: %11.0f  (%.3f%% of delivered: the client's ACKs only)\n", crossed, 100*crossed/delivered)
	fmt.Fprintf(stdout, "   download speed: %.0f MB/s\n", speed/1e6)
	fmt.Fprintln(stdout, "\nA two-way proxy would have carried every response byte twice. Tearing down.")
	return nil
}
