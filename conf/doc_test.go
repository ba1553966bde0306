package conf

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"testing"
)

// tomlKeys returns the key paths of every value of the configuration struct
// type t, like "switch.vip" or "backend.address" (arrays of tables without
// an index), from the fields' toml tags.
func tomlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		key := joinPath(prefix, f.Tag.Get("toml"))
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct || ft.Kind() == reflect.Pointer {
			ft = ft.Elem() // an array of tables, or an optional table
		}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(textUnmarshalerType) {
			keys = append(keys, tomlKeys(ft, key)...)
		} else {
			keys = append(keys, key)
		}
	}
	return keys
}

// docKey matches the key in the first column of a table row of
// docs/configuration.md: "| `switch.vip` |".
var docKey = regexp.MustCompile("(?m)^\\| `([a-z_]+(?:\\.[a-z_]+)+)` \\|")

// TestConfigurationDoc checks that docs/configuration.md has a row for
// every key of both files, and no row for a key they do not have.
func TestConfigurationDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range docKey.FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	keys := append(tomlKeys(reflect.TypeFor[Switch](), ""), tomlKeys(reflect.TypeFor[Agent](), "")...)
	for _, k := range keys {
		if !slices.Contains(documented, k) {
			t.Errorf("key %s is not documented in docs/configuration.md (a table row starting \"| `%s` |\")", k, k)
		}
	}
	for _, k := range documented {
		if !slices.Contains(keys, k) {
			t.Errorf("docs/configuration.md documents %s, which is not a configuration key", k)
		}
	}
	// One key of each shape: a table's, an array of tables', a text
	// value's, an optional table's, an array of tables in it.
	for _, k := range []string{"health.rise", "backend.address", "serve.drain_timeout", "bgp.asn", "bgp.peer.address"} {
		if !slices.Contains(keys, k) {
			t.Errorf("tomlKeys missed %s: %q", k, keys)
		}
	}
}

// restartParagraph is the paragraph of docs/configuration.md that lists the
// keys needing a restart.
var restartParagraph = regexp.MustCompile("(?s)So is a file that changes a key the running switch.*?\n\n")

// TestRestartKeysDoc: the keys docs/configuration.md says need a restart
// are exactly those tagged reload:"restart".
func TestRestartKeysDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	p := restartParagraph.Find(doc)
	if p == nil {
		t.Fatal("docs/configuration.md: no paragraph listing the keys that need a restart")
	}
	var listed []string
	for _, m := range regexp.MustCompile("`([a-z_]+(?:\\.[a-z_]+)+)`").FindAllSubmatch(p, -1) {
		listed = append(listed, string(m[1]))
	}
	if want := RestartOnly(); !slices.Equal(listed, want) {
		t.Errorf("docs list %v as needing a restart; the tags say %v", listed, want)
	}
}
