package testbed

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsDir is where "ip netns" keeps its named namespaces.
const netnsDir = "/run/netns/"

// Do runs fn on a goroutine locked to an OS thread that has joined the
// network namespace of host, and returns fn's error. Sockets fn opens
// (net.Dial, net.Listen, packet.Listen ...) belong to that namespace and keep
// it after fn returns. Goroutines started by fn run in the root namespace,
// and /sys still shows the root namespace's view. The thread is discarded
// afterwards, never reused.
func (tb *Testbed) Do(host string, fn func() error) error {
	ns := tb.NS(host)
	if ns == "" {
		return fmt.Errorf("%w: %q", ErrHost, host)
	}
	f, err := os.Open(netnsDir + ns)
	if err != nil {
		return fmt.Errorf("testbed: open namespace: %w", err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		// No UnlockOSThread: the goroutine exits locked, so the runtime
		// ends the thread instead of reusing it in the wrong namespace.
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("testbed: setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// sysctl sets sysctls in the namespace of host; kv holds dotted names
// ("net.ipv4.ip_forward") and values, alternately.
func (tb *Testbed) sysctl(host string, kv ...string) error {
	return tb.Do(host, func() error {
		for i := 0; i+1 < len(kv); i += 2 {
			path := "/proc/sys/" + strings.ReplaceAll(kv[i], ".", "/")
			if err := os.WriteFile(path, []byte(kv[i+1]+"\n"), 0); err != nil {
				return fmt.Errorf("testbed: sysctl %s=%s in %s: %w", kv[i], kv[i+1], tb.NS(host), err)
			}
		}
		return nil
	})
}
