// Package dist holds what "make install" puts on a host besides the
// binaries: the systemd units (systemd/) and the sysusers.d entry of the
// daemons' user (sysusers.d/). Its test runs "make install" into a
// temporary directory and checks the installed tree.
//
// It also holds what a machine needs to build and test: deps.sh installs
// the Debian packages of deps/debian.txt that are missing ("make demo",
// "make test" and .ci/run run it); its tests run it against a fake
// apt-get.
package dist
