// Package systemdtest runs haproxy-systemd-wrapper under a real systemd.
//
// The tests boot Debian's systemd (/lib/systemd/systemd) as PID 1 of private
// PID, mount, UTS, IPC and cgroup namespaces, install the unit templates from
// contrib/systemd into it and drive them with systemctl: start, reload under
// load, reloads and starts with a broken configuration, stop, restart after
// haproxy was killed, and the overwrite.conf drop-in.
//
// They need root, /lib/systemd/systemd, unshare/nsenter (util-linux), a
// cgroup2 mount and /usr/sbin/haproxy. Without root or systemd they skip,
// unless CI=true, where they fail instead. Run them with
//
//	sudo go test ./wrapper/systemdtest/ -count=1 -v
//
// The package holds no non-test code besides this file.
package systemdtest
