package conf

import "reflect"

// A field tagged reload:"restart" is a key a running switch cannot change:
// its rings, flow table and buffers, its TCP options, its VIP and ports (a
// frame to a port no longer served would be dropped, spliced or not), the
// secret, the admin listener and the whole [bgp] table (its sessions, and
// whether the switch answers ARP for the VIP). The tag is the one place that says so:
// RestartKeys reads it, and the documentation test checks that
// docs/configuration.md lists the same keys.

// RestartKeys returns an error naming the first key, in file order, whose
// value next (read from file) changes although a running switch cannot
// change it; nil when a reload may apply next.
func (cur *Switch) RestartKeys(next *Switch, file string) error {
	c, n := reflect.ValueOf(cur).Elem(), reflect.ValueOf(next).Elem()
	for _, f := range restartFields() {
		// A key of an optional table the file lacks is an error here: the
		// table came or went.
		cv, cerr := c.FieldByIndexErr(f.index)
		nv, nerr := n.FieldByIndexErr(f.index)
		if (cerr == nil) != (nerr == nil) || cerr == nil && !reflect.DeepEqual(cv.Interface(), nv.Interface()) {
			return &Error{File: file, Key: f.key, Msg: "cannot change while the switch runs; restart it"}
		}
	}
	return nil
}

// RestartOnly returns the keys a running switch cannot change, in file
// order.
func RestartOnly() []string {
	var keys []string
	for _, f := range restartFields() {
		keys = append(keys, f.key)
	}
	return keys
}

type restartField struct {
	key   string
	index []int // reflect.Value.FieldByIndex of a Switch
}

// restartFields returns the fields of Switch tagged reload:"restart".
func restartFields() []restartField {
	var out []restartField
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			key, at := joinPath(prefix, f.Tag.Get("toml")), append(index[:len(index):len(index)], i)
			ft := f.Type
			if ft.Kind() == reflect.Pointer { // an optional table
				ft = ft.Elem()
			}
			switch {
			case f.Tag.Get("reload") == "restart":
				out = append(out, restartField{key, at})
			case ft.Kind() == reflect.Struct && f.Tag.Get("toml") != "":
				walk(ft, key, at)
			}
		}
	}
	walk(reflect.TypeOf(Switch{}), "", nil)
	return out
}
