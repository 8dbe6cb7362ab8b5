package main

import (
	"bufio"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// genOutput forwards a generation's stdout and stderr to the wrapper's
// stderr, line by line (so they never interleave with the wrapper's own
// lines), and keeps the last lines so that a failed start or reload can say
// why in haproxy's own words. The pipe's read end crosses a re-exec.
type genOutput struct {
	fd    int
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

const keptLines = 30

func newGenOutput(f *os.File) *genOutput {
	o := &genOutput{fd: int(f.Fd()), done: make(chan struct{})}
	go o.forward(f)
	return o
}

func (o *genOutput) forward(f *os.File) {
	defer close(o.done)
	defer f.Close()
	r := bufio.NewReaderSize(f, 16<<10)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			log.raw(line)
			o.mu.Lock()
			o.lines = append(o.lines, strings.TrimRight(line, "\n"))
			if len(o.lines) > keptLines {
				o.lines = o.lines[len(o.lines)-keptLines:]
			}
			o.mu.Unlock()
		}
		if err != nil {
			if err != io.EOF {
				log.Debugf("haproxy output: %v", err)
			}
			return
		}
	}
}

// settle waits (bounded) until the process's output is all read: its exit
// can be reaped before the last lines are.
func (o *genOutput) settle(d time.Duration) {
	select {
	case <-o.done:
	case <-time.After(d):
	}
}

func (o *genOutput) text() string {
	if o == nil {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.lines, "\n")
}

// socketTransferFailed tells whether haproxy's output says it could not take
// the listening sockets over the -x stats socket (no "expose-fd listeners",
// or the old process's socket is gone).
func socketTransferFailed(out string) bool {
	for _, s := range []string{"Failed to get the sockets from the old process", "Failed to connect to the old process socket",
		"_getsocks"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}
