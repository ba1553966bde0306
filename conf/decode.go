package conf

import (
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The TOML library decodes the file into generic maps; the schema walk
// below fills the configuration structs from them. Doing the walk here
// rather than in toml.Decode gives every error its exact key path with
// array indices, and makes key names case-sensitive (the library would
// accept "VIP" for "vip").

// defaulter is implemented by the root structs of the files and by the
// element types of arrays of tables that have default values: setDefaults
// fills them in before the file, or the new element, is decoded.
type defaulter interface{ setDefaults() }

// config is a configuration file's root struct.
type config interface {
	defaulter
	// validate checks the decoded values, reporting problems to v.
	validate(v *validator)
}

// load reads the file at path into c: defaults, strict decoding, validation.
func load(path string, c config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileError(path, err)
	}
	return parse(path, data, c)
}

// parse is load on data read from file.
func parse(file string, data []byte, c config) error {
	text := string(data)
	d := &decoder{file: file, lines: newKeyLines(text)}
	var doc map[string]any
	if _, err := toml.Decode(text, &doc); err != nil {
		return d.syntaxError(text, err)
	}
	c.setDefaults()
	if err := d.table("", doc, reflect.ValueOf(c).Elem()); err != nil {
		return err
	}
	v := validator{d: d}
	c.validate(&v)
	if v.err != nil {
		return v.err
	}
	return nil
}

type decoder struct {
	file  string
	lines *keyLines
}

// errorf returns an *Error for the key path.
func (d *decoder) errorf(path, format string, args ...any) *Error {
	return &Error{File: d.file, Line: d.lines.line(path), Key: path, Msg: fmt.Sprintf(format, args...)}
}

// syntaxError converts an error of the TOML parser on text. Its key is the
// last one that starts at or before the error's line, as this package
// spells it.
func (d *decoder) syntaxError(text string, err error) *Error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: d.file, Msg: err.Error(), Err: err}
	}
	// The parser's line is one too far when the error is at a newline (as
	// in "[serve\n"); its byte offset, in the text without its byte order
	// mark, is exact when it has one (some errors carry -1).
	line := pe.Position.Line
	if text = strings.TrimPrefix(text, "\ufeff"); 0 <= pe.Position.Start && pe.Position.Start <= len(text) {
		line = 1 + strings.Count(text[:pe.Position.Start], "\n")
	}
	key := d.lines.before(line)
	if key == "" {
		key = pe.LastKey
	}
	return &Error{File: d.file, Line: line, Key: key, Msg: pe.Message, Err: err}
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// textNames name the values of the text types whose own parse errors read
// badly in a configuration file ("ParseAddr(...)", "not an ip:port").
var textNames = map[reflect.Type]string{
	reflect.TypeFor[netip.Addr]():     "an IP address",
	reflect.TypeFor[netip.AddrPort](): "an IP address and port (\"198.18.0.21:7070\")",
}

// table decodes the TOML table m into the struct dst. Field keys are the
// fields' toml tags. Keys are visited in document order, so the error
// reported is the first one in the file.
func (d *decoder) table(path string, m map[string]any, dst reflect.Value) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(d.lines.line(joinPath(path, a)), d.lines.line(joinPath(path, b))), cmp.Compare(a, b))
	})
	t := dst.Type()
	for _, k := range keys {
		p := joinPath(path, k)
		f, ok := fieldByKey(t, k)
		if !ok {
			return d.errorf(p, "unknown key")
		}
		if err := d.value(p, m[k], dst.FieldByIndex(f.Index)); err != nil {
			return err
		}
	}
	return nil
}

// fieldByKey returns the field of the struct type t tagged with key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("toml") == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// value decodes the TOML value v, found at path, into dst.
func (d *decoder) value(path string, v any, dst reflect.Value) error {
	if reflect.PointerTo(dst.Type()).Implements(textUnmarshalerType) {
		s, ok := v.(string)
		if !ok {
			return d.errorf(path, "expected a string, found %s", tomlType(v))
		}
		if err := dst.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			if name, ok := textNames[dst.Type()]; ok {
				return d.errorf(path, "%q is not %s", s, name)
			}
			return d.errorf(path, "%v", err)
		}
		return nil
	}
	switch dst.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return d.errorf(path, "expected a string, found %s", tomlType(v))
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return d.errorf(path, "expected a boolean, found %s", tomlType(v))
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Uint16, reflect.Uint32:
		n, ok := v.(int64)
		if !ok {
			return d.errorf(path, "expected an integer, found %s", tomlType(v))
		}
		if dst.CanInt() && dst.OverflowInt(n) || dst.CanUint() && (n < 0 || dst.OverflowUint(uint64(n))) {
			return d.errorf(path, "%d is out of range", n)
		}
		if dst.CanInt() {
			dst.SetInt(n)
		} else {
			dst.SetUint(uint64(n))
		}
	case reflect.Float64:
		switch n := v.(type) {
		case float64:
			dst.SetFloat(n)
		case int64: // "load_factor = 2"
			dst.SetFloat(float64(n))
		default:
			return d.errorf(path, "expected a number, found %s", tomlType(v))
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return d.errorf(path, "expected a table, found %s", tomlType(v))
		}
		return d.table(path, m, dst)
	case reflect.Pointer: // an optional table: nil when the file has none
		e := reflect.New(dst.Type().Elem())
		if def, ok := e.Interface().(defaulter); ok {
			def.setDefaults()
		}
		if err := d.value(path, v, e.Elem()); err != nil {
			return err
		}
		dst.Set(e)
	case reflect.Slice:
		var items []any
		switch a := v.(type) {
		case []any:
			items = a
		case []map[string]any:
			for _, m := range a {
				items = append(items, m)
			}
		default:
			return d.errorf(path, "expected an array, found %s", tomlType(v))
		}
		s := reflect.MakeSlice(dst.Type(), len(items), len(items))
		for i, item := range items {
			e := s.Index(i)
			if def, ok := e.Addr().Interface().(defaulter); ok {
				def.setDefaults()
			}
			if err := d.value(indexPath(path, i), item, e); err != nil {
				return err
			}
		}
		dst.Set(s)
	default:
		panic("conf: no decoder for field type " + dst.Type().String())
	}
	return nil
}

// tomlType names the TOML type of a decoded value, for messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

// validator collects the first semantic error of a decoded file.
type validator struct {
	d   *decoder
	err *Error
}

// fail records an error at the key path, unless one is already recorded.
func (v *validator) fail(path, format string, args ...any) {
	if v.err == nil {
		v.err = v.d.errorf(path, format, args...)
	}
}

// required checks that a required key has a non-empty value.
func (v *validator) required(path string, ok bool) bool {
	if !ok {
		v.fail(path, "required key is missing or empty")
	}
	return ok
}

// intRange checks lo <= n <= hi.
func (v *validator) intRange(path string, n, lo, hi int) {
	if n < lo || n > hi {
		v.fail(path, "%d is out of range [%d, %d]", n, lo, hi)
	}
}

// durationRange checks lo <= d <= hi.
func (v *validator) durationRange(path string, d Duration, lo, hi time.Duration) {
	switch {
	case d.Duration < lo:
		v.fail(path, "%v is shorter than the minimum %v", d, lo)
	case d.Duration > hi:
		v.fail(path, "%v is longer than the maximum %v", d, hi)
	}
}

// positive checks that a duration is longer than zero.
func (v *validator) positive(path string, d Duration) {
	if d.Duration <= 0 {
		v.fail(path, "%v is not longer than zero", d)
	}
}

// ipv4 checks that a is a unicast IPv4 address.
func (v *validator) ipv4(path string, a netip.Addr) {
	switch {
	case !v.required(path, a.IsValid()):
	case !a.Is4():
		v.fail(path, "%v is not an IPv4 address", a)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		v.fail(path, "%v is not a unicast address", a)
	}
}

// addrPort checks that a is set and has a non-zero port.
func (v *validator) addrPort(path string, a netip.AddrPort) {
	switch {
	case !v.required(path, a.IsValid()):
	case a.Port() == 0:
		v.fail(path, "port 0 in %v", a)
	case a.Addr().IsMulticast():
		v.fail(path, "%v is not a unicast address", a.Addr())
	}
}
