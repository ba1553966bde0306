package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Grace periods between SIGTERM and SIGKILL.
const (
	stopGrace = 5 * time.Second // Proc.Stop
	downGrace = 2 * time.Second // Testbed.Down
)

// Command returns a command that runs name with args inside the namespace of
// host, through "ip netns exec" (which also mounts that namespace's view of
// /sys). For an unknown host the command's Start fails with ErrHost.
func (tb *Testbed) Command(host string, name string, args ...string) *exec.Cmd {
	ns := tb.NS(host)
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	if ns == "" {
		cmd.Err = fmt.Errorf("%w: %q", ErrHost, host)
	}
	return cmd
}

// Run runs name with args inside the namespace of host to completion and
// returns its combined output. The error names the command and includes the
// output.
func (tb *Testbed) Run(host string, name string, args ...string) (string, error) {
	return output(tb.Command(host, name, args...))
}

// Proc is a long-running process started in a namespace by Testbed.Start.
type Proc struct {
	Cmd *exec.Cmd // the running command; do not call its Wait
	Log string    // path of the file receiving its stdout and stderr

	done    chan struct{} // closed once the process has been waited for
	waitErr error         // Cmd.Wait's result, set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start starts name with args inside the namespace of host, with stdout and
// stderr written to the file logPath (created or truncated). The process
// gets its own process group and SIGKILL when this process dies; Down stops
// it.
func (tb *Testbed) Start(host, logPath string, name string, args ...string) (*Proc, error) {
	return tb.start(host, logPath, false, name, args...)
}

// start is Start; a detached process gets no death signal, and outlives
// this process.
func (tb *Testbed) start(host, logPath string, detach bool, name string, args ...string) (*Proc, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("testbed: process log: %w", err)
	}
	cmd := tb.Command(host, name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if detach {
		cmd.SysProcAttr.Pdeathsig = 0
	}

	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.down {
		log.Close()
		return nil, ErrDown
	}
	if err := startOnStarterThread(cmd); err != nil {
		log.Close()
		return nil, fmt.Errorf("testbed: start %s: %w", strings.Join(cmd.Args, " "), err)
	}
	p := &Proc{Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	tb.procs = append(tb.procs, p)
	return p, nil
}

// startRequest asks the starter thread to start cmd.
type startRequest struct {
	cmd  *exec.Cmd
	errc chan<- error
}

var (
	starterOnce sync.Once
	starter     = make(chan startRequest)
)

// startOnStarterThread starts cmd from one OS thread that lives as long as
// the process. Pdeathsig is sent when the thread that forked the child ends,
// not the process, and the Go runtime ends a thread whenever a goroutine
// exits while locked to it (as Do's goroutines do, and shard loops may):
// started from an arbitrary thread, the child could be killed at random.
func startOnStarterThread(cmd *exec.Cmd) error {
	starterOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: this thread is the parent
			for r := range starter {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	starter <- startRequest{cmd, errc}
	return <-errc
}

// Done returns a channel closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error, as
// exec.Cmd.Wait would.
func (p *Proc) Wait() error {
	<-p.done
	return p.waitErr
}

// Kill sends SIGKILL to the process (by its PID, not to its group: a
// crash) and waits until it has been reaped. It returns an error if the
// process had exited before, or if the signal could not be sent.
func (p *Proc) Kill() error {
	args := strings.Join(p.Cmd.Args, " ")
	select {
	case <-p.done:
		return fmt.Errorf("testbed: kill %s: it had exited (Wait says how; log %s)", args, p.Log)
	default:
	}
	if err := p.Cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testbed: kill %s: %w", args, err)
	}
	<-p.done
	return nil
}

// Stop sends SIGTERM to the process group, waits up to 5 s for the process
// to exit, then sends SIGKILL. It returns nil if the process exited with
// status 0 or died of that SIGTERM, and an error otherwise: it had already
// failed, exited non-zero, or had to be killed. Later calls return the same.
func (p *Proc) Stop() error {
	return p.stop(stopGrace)
}

// stop is Stop with the given grace period before SIGKILL.
func (p *Proc) stop(grace time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.terminate(grace) })
	return p.stopErr
}

// terminate does the work of stop, once.
func (p *Proc) terminate(grace time.Duration) error {
	pgid := p.Cmd.Process.Pid
	// Members of the group that outlive the leader are killed too.
	defer syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		return p.exitError("had exited")
	default:
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("testbed: %s: still running %v after SIGTERM; killed", strings.Join(p.Cmd.Args, " "), grace)
	}
	var exit *exec.ExitError
	if errors.As(p.waitErr, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return p.exitError("after SIGTERM")
}

// exitError returns nil if the process exited with status 0, else an error
// naming the command, saying when, and pointing at the log.
func (p *Proc) exitError(when string) error {
	if p.waitErr == nil {
		return nil
	}
	return fmt.Errorf("testbed: %s %s: %w (log %s)", strings.Join(p.Cmd.Args, " "), when, p.waitErr, p.Log)
}
