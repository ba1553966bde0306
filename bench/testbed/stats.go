package testbed

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// errSNMPFormat reports /proc/net/snmp text that is not header and value
// line pairs.
var errSNMPFormat = errors.New("testbed: malformed snmp counters")

// IfBytes returns the received and transmitted byte counters of interface
// ifname in the namespace of host, from /sys/class/net/IF/statistics.
func (tb *Testbed) IfBytes(host, ifname string) (rx, tx uint64, err error) {
	if ifname == "" || strings.ContainsAny(ifname, "/ ") || ifname == "." || ifname == ".." {
		return 0, 0, fmt.Errorf("testbed: bad interface name %q", ifname)
	}
	dir := "/sys/class/net/" + ifname + "/statistics/"
	out, err := tb.Run(host, "cat", dir+"rx_bytes", dir+"tx_bytes")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("testbed: %s statistics of %s: unexpected output %q", tb.NS(host), ifname, out)
	}
	if rx, err = strconv.ParseUint(f[0], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("testbed: %s rx_bytes of %s: %w", tb.NS(host), ifname, err)
	}
	if tx, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("testbed: %s tx_bytes of %s: %w", tb.NS(host), ifname, err)
	}
	return rx, tx, nil
}

// SNMP returns the protocol counters of the namespace of host, from
// /proc/net/snmp and /proc/net/netstat, keyed "Proto.Name": "Tcp.RetransSegs",
// "Tcp.InCsumErrors", "TcpExt.TCPTimeouts" and so on. Negative fields (such
// as Tcp.MaxConn, -1) are not counters and are left out.
func (tb *Testbed) SNMP(host string) (map[string]uint64, error) {
	out, err := tb.Run(host, "cat", "/proc/net/snmp", "/proc/net/netstat")
	if err != nil {
		return nil, err
	}
	m, err := parseSNMP(out)
	if err != nil {
		return nil, fmt.Errorf("%w in %s", err, tb.NS(host))
	}
	return m, nil
}

// parseSNMP parses the format of /proc/net/snmp and /proc/net/netstat: pairs
// of lines, "Proto: Name1 Name2 ..." then "Proto: value1 value2 ...".
func parseSNMP(text string) (map[string]uint64, error) {
	m := make(map[string]uint64)
	var header []string
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if header == nil {
			if len(f) < 2 || len(f[0]) < 2 || !strings.HasSuffix(f[0], ":") {
				return nil, fmt.Errorf("%w: header line %q", errSNMPFormat, strings.TrimSpace(line))
			}
			header = f
			continue
		}
		if len(f) != len(header) || f[0] != header[0] {
			return nil, fmt.Errorf("%w: values %q do not match header %q", errSNMPFormat, strings.TrimSpace(line), strings.Join(header, " "))
		}
		proto := strings.TrimSuffix(header[0], ":")
		for i := 1; i < len(f); i++ {
			if strings.HasPrefix(f[i], "-") {
				continue
			}
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: %s.%s: %v", errSNMPFormat, proto, header[i], err)
			}
			m[proto+"."+header[i]] = v
		}
		header = nil
	}
	if header != nil {
		return nil, fmt.Errorf("%w: header %q without values", errSNMPFormat, header[0])
	}
	return m, nil
}
