package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// rawLoopArg starts the bench binary as contender R: the physical limit of
// a reload, bare "haproxy -f cfg -db -x admin.sock -sf <old pids>" from a
// minimal loop, with no readiness wait, no check and no bookkeeping but the
// live pids. SIGUSR2 starts a new haproxy, SIGTERM/SIGINT go to every live
// one, the loop exits once none is left.
const rawLoopArg = "-raw-loop"

// rawLoop is R's main: bench -raw-loop HAPROXY CFG SOCK.
func rawLoop(args []string) int {
	if len(args) != 3 {
		fmt.Fprintf(os.Stderr, "usage: bench %s HAPROXY CFG STATS_SOCKET\n", rawLoopArg)
		return 2
	}
	bin, cfg, sock := args[0], args[1], args[2]
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	live := map[int]bool{}
	start := func() {
		argv := []string{bin, "-f", cfg, "-db"}
		if len(live) > 0 {
			argv = append(argv, "-x", sock, "-sf")
			for p := range live {
				argv = append(argv, strconv.Itoa(p))
			}
		}
		pid, err := syscall.ForkExec(bin, argv, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
		if err != nil {
			fmt.Fprintf(os.Stderr, "raw loop: %v\n", err)
			return
		}
		live[pid] = true
	}
	start()
	stopping := false
	for sig := range sigs {
		switch sig {
		case syscall.SIGUSR2:
			if !stopping {
				start()
			}
		case syscall.SIGTERM, syscall.SIGINT:
			stopping = true
			for p := range live {
				_ = syscall.Kill(p, sig.(syscall.Signal))
			}
		case syscall.SIGCHLD:
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
				delete(live, pid)
			}
			if len(live) == 0 {
				return 0
			}
		}
	}
	return 0
}
