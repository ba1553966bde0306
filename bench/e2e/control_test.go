package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"webswitch/bench/testbed"
	"webswitch/handoff"
)

// TestControlChannel attacks be1's agent from the client namespace, as
// anyone on the LAN could: a wrong secret, a replayed recording of a real
// session, a truncated message and an unknown protocol version. Each is
// rejected and counted by kind, the agent re-creates no connection for any
// of them, it goes on serving the switch, and its control port is bound to
// its configured address only.
func TestControlChannel(t *testing.T) {
	needRoot(t, "ip", "curl", "ss")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	s := startSite(t, true, www)
	agentAddr := testbed.BackendIP(1) + ":7070"

	out, err := s.tb.Run("be1", "ss", "-Hltn")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, ":7070") && !strings.Contains(line, agentAddr) {
			t.Errorf("a control listener not bound to %s: %s", agentAddr, line)
		}
	}
	if !strings.Contains(out, agentAddr) {
		t.Fatalf("no control listener on %s:\n%s", agentAddr, out)
	}

	secret, err := os.ReadFile(filepath.Join(s.Dir, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	secret = bytes.TrimSpace(secret)
	before := s.agentCounters(0)

	var recorded []byte // what a real switch session wrote
	attacks := []struct {
		name   string
		secret []byte
		after  func(c net.Conn, sess *handoff.Session) error // once the handshake is done
	}{
		{name: "wrong secret", secret: []byte("not the secret of this site, at all")},
		{name: "real session, recorded", secret: secret, after: func(c net.Conn, sess *handoff.Session) error {
			if err := sess.Send(handoff.MsgPing, 7, nil); err != nil {
				return err
			}
			_, err := c.Write(sess.Pending())
			return err
		}},
		{name: "truncated message", secret: secret, after: func(c net.Conn, sess *handoff.Session) error {
			if err := sess.Send(handoff.MsgPing, 8, nil); err != nil {
				return err
			}
			if _, err := c.Write(sess.Pending()[:handoff.HeaderLen+2]); err != nil {
				return err
			}
			return c.(*recorder).Conn.(*net.TCPConn).CloseWrite()
		}},
		{name: "unknown version", secret: secret, after: func(c net.Conn, sess *handoff.Session) error {
			if err := sess.Send(handoff.MsgPing, 9, nil); err != nil {
				return err
			}
			p := bytes.Clone(sess.Pending())
			p[0] = handoff.Version + 1 // the header's version byte
			_, err := c.Write(p)
			return err
		}},
	}
	for _, a := range attacks {
		err := s.tb.Do("cli", func() error {
			c, err := net.DialTimeout("tcp", agentAddr, 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			rec := &recorder{Conn: c}
			sess := handoff.NewSwitchSession(a.secret, rand.Reader)
			if err := handshake(rec, sess); err != nil {
				return nil // refused during the handshake: the wrong secret
			}
			if a.after != nil {
				if err := a.after(rec, sess); err != nil {
					return err
				}
			}
			if a.name == "real session, recorded" {
				recorded = rec.written.Bytes()
			}
			// The agent must close the connection of every attack; the
			// recorded session, which was genuine, is closed by us.
			if a.name != "real session, recorded" {
				if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
					return errors.New("the agent kept the connection open: " + err.Error())
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
	}
	// The replay: the recorded bytes of the real session on a new
	// connection. The agent's new nonce makes the recorded proof wrong.
	err = s.tb.Do("cli", func() error {
		c, err := net.DialTimeout("tcp", agentAddr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(recorded); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			return err
		}
		io.Copy(io.Discard, c)
		return nil
	})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}

	// The switch still hands connections to be1.
	if got := s.curl(vipURL + "/static/small.txt"); got != smallBody {
		t.Errorf("through the switch after the attacks: %q, want %q", got, smallBody)
	}
	after := s.agentCounters(0)
	diff := func(k string) uint64 { return after[k] - before[k] }
	t.Logf("agent counters moved: %v", func() map[string]uint64 {
		m := map[string]uint64{}
		for k := range after {
			if d := diff(k); d != 0 {
				m[k] = d
			}
		}
		return m
	}())
	for k, want := range map[string]uint64{
		"reject_auth":      2, // the wrong secret and the replay
		"reject_truncated": 1,
		"reject_version":   1,
		"sessions":         3, // the genuine handshakes of the attacks
		"handoffs":         1, // the curl above, and nothing else
	} {
		if got := diff(k); got != want {
			t.Errorf("agent counter %s moved by %d, want %d", k, got, want)
		}
	}
}

// recorder is a net.Conn that keeps a copy of what is written.
type recorder struct {
	net.Conn
	written bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.written.Write(b)
	return r.Conn.Write(b)
}

// handshake runs the switch side of a control session's handshake on c.
func handshake(c net.Conn, sess *handoff.Session) error {
	buf := make([]byte, 4096)
	n := 0
	for !sess.Ready() {
		m, err := c.Read(buf[n:])
		if err != nil {
			return err
		}
		n += m
		for {
			used, _, _, err := sess.Receive(buf[:n])
			if err != nil {
				return err
			}
			if used == 0 {
				break
			}
			n = copy(buf, buf[used:n])
		}
		if p := sess.Pending(); len(p) > 0 {
			if _, err := c.Write(p); err != nil {
				return err
			}
			sess.Written(len(p))
		}
	}
	return nil
}

// agentCounters makes back-end i's agent (0: be1) log its counters and
// returns them.
func (s *site) agentCounters(i int) map[string]uint64 {
	s.t.Helper()
	agent := s.Agents[i]
	count := func() int {
		b, _ := os.ReadFile(agent.Log)
		return strings.Count(string(b), `"agent counters"`)
	}
	n := count()
	if err := agent.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		s.t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); count() == n; {
		if time.Now().After(deadline) {
			s.t.Fatal("the agent logged no counters after SIGUSR1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f, err := os.Open(agent.Log)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	var last map[string]uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Message  string            `json:"message"`
			Counters map[string]uint64 `json:"counters"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Message == "agent counters" {
			last = rec.Counters
		}
	}
	return last
}

// TestControlConnectionLoss cuts every control connection between the
// switch and be1 (ss -K on be1) during a download from be1: the download,
// a spliced flow, goes on byte-exact; the switch reconnects with backoff
// and hands new connections to be1 again.
func TestControlConnectionLoss(t *testing.T) {
	needRoot(t, "ip", "curl", "ss", "sha256sum")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	sum := randomFile(t, filepath.Join(www, "static", "50m.bin"), 50*mib)
	s := startSite(t, true, www)

	// About 2.5 s at 20 MB/s: the cut falls in the middle of it.
	dl := s.download(vipURL+"/static/50m.bin", "20M")
	time.Sleep(700 * time.Millisecond)
	out, err := s.tb.Run("be1", "ss", "-K", "-tn", "state", "established", "sport", "= :7070")
	if err != nil {
		t.Fatalf("ss -K: %v: %s", err, out)
	}
	if killed := strings.Count(out, ":7070"); killed != 2 { // one per shard
		t.Errorf("ss -K closed %d control connections, want 2:\n%s", killed, out)
	}
	// New connections reach be1 again once the switch has reconnected.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := s.tb.Run("cli", "curl", "-sS", "-m", "2", vipURL+"/static/small.txt")
		if err == nil && got == smallBody {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("be1 not reachable through the switch 5 s after the cut: %q %v", got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, err := dl(); err != nil || got != sum {
		t.Errorf("download across the cut: %v, sha256 %q, want %s", err, got, sum)
	}
	logs, err := os.ReadFile(s.SwitchLog)
	if err != nil {
		t.Fatal(err)
	}
	down, ready := strings.Count(string(logs), "control connection down"), strings.Count(string(logs), "control connection ready")
	t.Logf("switch log: %d 'control connection down', %d 'control connection ready'", down, ready)
	if down < 2 || ready < 6 { // 2 shards x 2 back-ends at start, then be1's 2 again
		t.Errorf("switch log: %d downs, %d readies; want at least 2 and 6", down, ready)
	}
}
