package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"webswitch/bench/site"
)

// onSite runs a bench that needs a whole site (pps, synflood, slowloris):
// it writes files into a new document root used by both back-ends (unless
// cfg names its own), brings the site up from binDir with SIGINT and
// SIGTERM tearing it down, runs bench, tears the site down, and prints the
// result as indented JSON or with summary.
func onSite[R any](binDir string, cfg site.Config, files map[string][]byte, bench func(*site.Site) (R, error),
	asJSON bool, stdout io.Writer, summary func(io.Writer, *R)) (err error) {
	if cfg.BinDir, err = filepath.Abs(binDir); err != nil {
		return err
	}
	if cfg.Dir, err = os.MkdirTemp("", "wsbench-site"); err != nil {
		return err
	}
	defer os.RemoveAll(cfg.Dir)
	www := filepath.Join(cfg.Dir, "www")
	if err := site.WriteFiles(www, files); err != nil {
		return err
	}
	if cfg.Static1 == "" {
		cfg.Static1, cfg.Static2 = www, www
	}
	s, err := site.Start(cfg)
	if err != nil {
		return err
	}
	defer func() {
		if derr := s.Down(); derr != nil && err == nil {
			err = derr
		}
	}()
	s.TB.HandleSignals()
	res, err := bench(s)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, s.Logs())
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	summary(stdout, &res)
	return nil
}
