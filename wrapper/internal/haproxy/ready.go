package haproxy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"haproxy-systemd-wrapper/wrapper/internal/proc"
)

// WriteReadyConfig writes, into the wrapper's private runtime folder, the
// extra configuration file of generation gen: a stats socket of its own. The
// generation serves once haproxy answers "show info" there with its own pid:
// haproxy answers only from its event loop, after binding every listener and
// telling the old pids to stop. The files are created afresh
// (O_EXCL|O_NOFOLLOW): nothing planted in the folder is followed or loaded.
func WriteReadyConfig(dir string, gen int) (sock, cfg string, err error) {
	sock = filepath.Join(dir, fmt.Sprintf("gen-%d.sock", gen))
	cfg = filepath.Join(dir, fmt.Sprintf("gen-%d.cfg", gen))
	_ = os.Remove(sock)
	_ = os.Remove(cfg)
	text := fmt.Sprintf("# written by haproxy-systemd-wrapper: readiness socket of generation %d\nglobal\n    stats socket %s mode 600 level user\n", gen, sock)
	f, err := os.OpenFile(cfg, os.O_WRONLY|os.O_CREATE|os.O_EXCL|proc.ONoFollow, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("write %s: %w: set HAPROXY_WRAPPER_RUNTIME_DIR to a private folder", cfg, err)
	}
	_, werr := f.WriteString(text)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(cfg)
		return "", "", fmt.Errorf("write %s: %w", cfg, werr)
	}
	return sock, cfg, nil
}

// WaitAnswers waits until haproxy pid answers "show info" on sock with its
// own pid. It tries at once, then backs off from 1 ms to 10 ms.
func WaitAnswers(ctx context.Context, sock string, pid int) error {
	wait := time.Millisecond
	for {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := ShowInfo(qctx, sock)
		cancel()
		if err == nil && info.Pid == pid {
			return nil
		}
		if err == nil && info.Pid > 0 && proc.ParentOf(info.Pid) == pid {
			return fmt.Errorf("haproxy pid %d runs in master-worker mode (its worker %d answers): remove 'master-worker' from the global section, the wrapper supervises haproxy itself", pid, info.Pid)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, 10*time.Millisecond)
	}
}

// WaitPipeClosed waits for haproxy <= 1.7 to close its end of the
// HAPROXY_WRAPPER_FD pipe, which it does once it serves. r is closed on
// return.
func WaitPipeClosed(ctx context.Context, r *os.File) error {
	defer r.Close()
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	b := make([]byte, 64)
	for {
		if _, err := r.Read(b); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil
		}
	}
}
