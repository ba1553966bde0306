package failover

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"webswitch/bench/testbed"
)

// downloadIdle is how long a download waits for data before it counts as
// broken: a connection whose state died with its node gets no answer, no
// RST, while its client has nothing to send.
const downloadIdle = 4 * time.Second

// errWrongContent reports a download whose bytes differ from BigFile's.
var errWrongContent = errors.New("wrong content (SHA-256)")

// dialDownloads opens n connections to the VIP from the client namespace.
func dialDownloads(tb *testbed.Testbed, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	err := tb.Do("cli", func() error {
		for range n {
			c, err := net.DialTimeout("tcp", testbed.VIP+":80", 2*time.Second)
			if err != nil {
				return fmt.Errorf("failover: download: %w", err)
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
	}
	return conns, err
}

// download fetches BigFile on c, reading at rate bytes/s (the client's
// small receive buffer, clientRmem, makes the server send at that rate
// too), and says whether it came whole and exact, with when it ended after
// t0, the bytes it got and what went wrong.
func download(c net.Conn, rate int, t0 time.Time) (bool, string) {
	defer c.Close()
	got := int64(0)
	status := func(err error) string {
		s := fmt.Sprintf("ended %.2f s in, %d of %d bytes", time.Since(t0).Seconds(), got, bigSize)
		if err != nil {
			s += ": " + err.Error()
		}
		return s
	}
	c.SetDeadline(time.Now().Add(downloadIdle))
	if _, err := fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", BigFile, testbed.VIP); err != nil {
		return false, status(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false, status(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, status(fmt.Errorf("status %s", resp.Status))
	}
	h := sha256.New()
	buf := make([]byte, 32<<10)
	start := time.Now()
	for {
		c.SetDeadline(time.Now().Add(downloadIdle))
		n, err := resp.Body.Read(buf)
		h.Write(buf[:n])
		got += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, status(err)
		}
		// Pace the reads: got bytes take got/rate seconds from the start.
		time.Sleep(time.Until(start.Add(time.Duration(float64(got) / float64(rate) * float64(time.Second)))))
	}
	if want := bigSum(); string(h.Sum(nil)) != string(want[:]) {
		return false, status(errWrongContent)
	}
	return true, status(nil)
}
