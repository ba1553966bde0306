package report

import (
	"math"
	"strconv"
)

// finite reports whether v is neither NaN nor infinite.
func finite(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0)
}

// formatNum formats v with three significant digits (more for values of
// 1000 and above, which are shown whole) and no exponent; "" when v is not
// finite.
func formatNum(v float64) string {
	if !finite(v) {
		return ""
	}
	if v == 0 {
		return "0"
	}
	decimals := 2 - int(math.Floor(math.Log10(math.Abs(v))))
	return strconv.FormatFloat(v, 'f', min(max(decimals, 0), 6), 64)
}

// formatMs formats a latency in milliseconds: three significant digits
// but at most two decimals ("0.42", "3.90", "12.4", "1030"), and two
// significant digits below 0.1 ms ("0.087"); "" when v is not finite.
func formatMs(v float64) string {
	if !finite(v) {
		return ""
	}
	decimals := 2
	if a := math.Abs(v); a > 0 {
		mag := int(math.Floor(math.Log10(a)))
		decimals = max(2-mag, 0)
		if a < 0.1 {
			decimals = min(1-mag, 6)
		} else if decimals > 2 {
			decimals = 2
		}
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// formatRatio formats v/base as "0.97x"; "" when base is not positive or
// the ratio is not finite.
func formatRatio(v, base float64) string {
	if !(base > 0) {
		return ""
	}
	q := v / base
	if !finite(q) {
		return ""
	}
	return strconv.FormatFloat(q, 'f', 2, 64) + "x"
}

// formatSize formats a byte count with binary units: "1 KiB", "1.5 MiB",
// "512 B".
func formatSize(n int64) string {
	units := []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}}
	for _, u := range units {
		if unit := int64(1) << u.shift; n >= unit {
			if n%unit == 0 {
				return strconv.FormatInt(n/unit, 10) + " " + u.name
			}
			return formatNum(float64(n)/float64(unit)) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}

// formatPercent writes a share 0..1 as a whole percentage ("97%"); blank
// when not measured (0) or not finite.
func formatPercent(v float64) string {
	if v <= 0 || !finite(v) {
		return ""
	}
	return strconv.FormatFloat(100*v, 'f', 0, 64) + "%"
}
