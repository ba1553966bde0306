package report

import (
	"math"
	"testing"
)

func TestFormatNum(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {42000, "42000"}, {1234.6, "1235"}, {999.4, "999"}, {123.45, "123"},
		{12.345, "12.3"}, {3.14159, "3.14"}, {0.0123, "0.0123"}, {-2.5, "-2.50"},
		{1e-9, "0.000000"}, {math.NaN(), ""}, {math.Inf(1), ""}, {math.Inf(-1), ""},
	}
	for _, tt := range tests {
		if got := formatNum(tt.in); got != tt.want {
			t.Errorf("formatNum(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatMs(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.00"}, {0.1, "0.10"}, {0.42, "0.42"}, {0.099, "0.099"}, {0.0042, "0.0042"},
		{1.234, "1.23"}, {3.9, "3.90"}, {12.44, "12.4"}, {56, "56.0"}, {126.4, "126"}, {1620, "1620"}, {math.NaN(), ""}, {math.Inf(1), ""},
	}
	for _, tt := range tests {
		if got := formatMs(tt.in); got != tt.want {
			t.Errorf("formatMs(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatRatio(t *testing.T) {
	tests := []struct {
		v, base float64
		want    string
	}{
		{970, 1000, "0.97x"}, {1000, 1000, "1.00x"}, {2500, 1000, "2.50x"}, {0, 1000, "0.00x"},
		{5, 0, ""}, {5, -1, ""}, {5, math.NaN(), ""}, {math.NaN(), 5, ""}, {math.Inf(1), 5, ""},
		{5, math.Inf(1), "0.00x"},
	}
	for _, tt := range tests {
		if got := formatRatio(tt.v, tt.base); got != tt.want {
			t.Errorf("formatRatio(%v, %v) = %q, want %q", tt.v, tt.base, got, tt.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {512, "512 B"}, {1023, "1023 B"}, {1 << 10, "1 KiB"}, {100 << 10, "100 KiB"},
		{1500, "1.46 KiB"}, {1 << 20, "1 MiB"}, {10 << 20, "10 MiB"}, {3 << 19, "1.50 MiB"},
		{1 << 30, "1 GiB"}, {5 << 30, "5 GiB"},
	}
	for _, tt := range tests {
		if got := formatSize(tt.in); got != tt.want {
			t.Errorf("formatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
