package supervisor

import (
	"testing"

	"haproxy-systemd-wrapper/wrapper/internal/earlysig"
)

// TestSignalEventsCoverHandled: every signal that earlysig catches means
// an Event here, and nothing here waits for a signal earlysig does not
// catch; each one's context names it.
func TestSignalEventsCoverHandled(t *testing.T) {
	handled := map[string]bool{}
	for _, sig := range earlysig.Handled {
		handled[sig.String()] = true
		in, ok := signalEvents[sig]
		if !ok {
			t.Errorf("%v is caught (earlysig.Handled) but means no Event (signalEvents)", sig)
			continue
		}
		if in.c.sig.String() != sig.String() {
			t.Errorf("%v's context names %v", sig, in.c.sig)
		}
	}
	for sig := range signalEvents {
		if !handled[sig.String()] {
			t.Errorf("%v means an Event (signalEvents) but is never caught (earlysig.Handled)", sig)
		}
	}
}
