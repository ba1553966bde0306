// Package dist holds what "make install" puts on a host besides the
// binaries: the systemd units (systemd/) and the sysusers.d entry of the
// daemons' user (sysusers.d/). Its test runs "make install" into a
// temporary directory and checks the installed tree.
package dist
