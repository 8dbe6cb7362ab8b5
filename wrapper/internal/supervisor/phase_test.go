package supervisor

import (
	"slices"
	"testing"
)

// TestDecide checks every phase x event pair of Decide against the table
// below, written out in full: each row says what the pair should do
// according to the doc comments of Phase, Event and Action. A pair that
// means nothing leaves the phase unchanged with no action (want nil).
func TestDecide(t *testing.T) {
	type A = []Action
	tests := []struct {
		phase Phase
		event Event
		next  Phase
		acts  []Action
	}{
		// Starting: the first generation is not serving yet.
		{Starting, EvReload, Starting, A{ActQueueReload}}, // run once it serves
		{Starting, EvStop, Stopping, A{ActForwardStop}},
		{Starting, EvGracefulStop, Stopping, A{ActForwardStop}},
		{Starting, EvAbort, Done, A{ActKillAll, ActExit}},
		{Starting, EvCheckPassed, Starting, A{ActSpawn}},
		{Starting, EvReloadHere, Starting, nil}, // no upgrade outside a reload
		{Starting, EvReady, Serving, A{ActFirstReady, ActNextReload}},
		{Starting, EvStartFailed, Stopping, A{ActStartFailed, ActForwardStop}},
		{Starting, EvServingDied, Starting, nil}, // nothing serves yet
		{Starting, EvOldExited, Starting, A{ActRetire}},
		{Starting, EvNoneLeft, Done, A{ActServingLost, ActExit}},

		// Serving: a generation serves, nothing in progress.
		{Serving, EvReload, Reloading, A{ActBeginReload}},
		{Serving, EvStop, Stopping, A{ActForwardStop}},
		{Serving, EvGracefulStop, Stopping, A{ActForwardStop}},
		{Serving, EvAbort, Done, A{ActKillAll, ActExit}},
		{Serving, EvCheckPassed, Serving, nil}, // no check in progress
		{Serving, EvReloadHere, Serving, nil},
		{Serving, EvReady, Serving, nil}, // no new generation in progress
		{Serving, EvStartFailed, Serving, nil},
		{Serving, EvServingDied, Stopping, A{ActServingLost, ActForwardStop}},
		{Serving, EvOldExited, Serving, A{ActRetire}},
		{Serving, EvNoneLeft, Done, A{ActServingLost, ActExit}},

		// Reloading: a new generation is being checked or started.
		{Reloading, EvReload, Reloading, A{ActQueueReload}},
		{Reloading, EvStop, Stopping, A{ActReloadFailed, ActForwardStop}},
		{Reloading, EvGracefulStop, Stopping, A{ActReloadFailed, ActForwardStop}},
		{Reloading, EvAbort, Done, A{ActKillAll, ActExit}},
		{Reloading, EvCheckPassed, Reloading, A{ActSpawnOrUpgrade}},
		// The new binary was refused by the probe (which runs in Reloading,
		// before Upgrading), or a re-executed image resumes the reload in
		// Reloading: either way the reload goes on in this image.
		{Reloading, EvReloadHere, Reloading, A{ActSpawn}},
		{Reloading, EvReady, Serving, A{ActReloadDone, ActNextReload}},
		{Reloading, EvStartFailed, Serving, A{ActReloadFailed, ActNextReload}},
		{Reloading, EvServingDied, Reloading, A{ActRetire}}, // the new generation may still take over
		{Reloading, EvOldExited, Reloading, A{ActRetire}},
		{Reloading, EvNoneLeft, Done, A{ActServingLost, ActExit}},

		// Upgrading: a new wrapper binary is about to be executed.
		{Upgrading, EvReload, Upgrading, A{ActQueueReload}},
		{Upgrading, EvStop, Stopping, A{ActReloadFailed, ActForwardStop}}, // a stop cancels the upgrade
		{Upgrading, EvGracefulStop, Stopping, A{ActReloadFailed, ActForwardStop}},
		{Upgrading, EvAbort, Done, A{ActKillAll, ActExit}},
		{Upgrading, EvCheckPassed, Upgrading, nil}, // the check already passed
		{Upgrading, EvReloadHere, Reloading, A{ActSpawn}},
		{Upgrading, EvReady, Upgrading, nil}, // no new generation yet
		{Upgrading, EvStartFailed, Upgrading, nil},
		{Upgrading, EvServingDied, Upgrading, A{ActRetire}},
		{Upgrading, EvOldExited, Upgrading, A{ActRetire}},
		{Upgrading, EvNoneLeft, Done, A{ActServingLost, ActExit}},

		// Stopping: the stop signal went to every generation.
		{Stopping, EvReload, Stopping, A{ActRefuseReload}},
		{Stopping, EvStop, Stopping, A{ActForwardStop}},   // e.g. SIGTERM after SIGUSR1
		{Stopping, EvGracefulStop, Stopping, nil},         // never downgrade a stop to a soft stop
		{Stopping, EvAbort, Done, A{ActKillAll, ActExit}}, // the watchdog ends a stop that hangs
		{Stopping, EvCheckPassed, Stopping, nil},
		{Stopping, EvReloadHere, Stopping, nil},
		// A generation that turns ready while stopping has not exited (it
		// got the stop signal and its exit comes as EvStartFailed): there
		// is nothing to retire yet.
		{Stopping, EvReady, Stopping, nil},
		{Stopping, EvStartFailed, Stopping, A{ActRetire}},
		{Stopping, EvServingDied, Stopping, A{ActRetire}},
		{Stopping, EvOldExited, Stopping, A{ActRetire}},
		{Stopping, EvNoneLeft, Done, A{ActExit}},

		// Done: nothing left; every event means nothing.
		{Done, EvReload, Done, nil},
		{Done, EvStop, Done, nil},
		{Done, EvGracefulStop, Done, nil},
		{Done, EvAbort, Done, nil},
		{Done, EvCheckPassed, Done, nil},
		{Done, EvReloadHere, Done, nil},
		{Done, EvReady, Done, nil},
		{Done, EvStartFailed, Done, nil},
		{Done, EvServingDied, Done, nil},
		{Done, EvOldExited, Done, nil},
		{Done, EvNoneLeft, Done, nil},

		// A crash of the serving generation, replaced when the loop allows
		// it (HAPROXY_WRAPPER_RESPAWN_LIMIT): only while serving.
		{Starting, EvRespawn, Starting, nil},
		{Serving, EvRespawn, Reloading, A{ActRetire, ActRespawn}},
		{Reloading, EvRespawn, Reloading, nil},
		{Upgrading, EvRespawn, Upgrading, nil},
		{Stopping, EvRespawn, Stopping, nil},
		{Done, EvRespawn, Done, nil},
	}

	// The table covers every pair exactly once.
	type pair struct {
		p Phase
		e Event
	}
	seen := map[pair]bool{}
	for _, tt := range tests {
		k := pair{tt.phase, tt.event}
		if seen[k] {
			t.Errorf("table: %s + %s listed twice", tt.phase, tt.event)
		}
		seen[k] = true
	}
	for p := Starting; p <= Done; p++ {
		for e := EvReload; e <= EvRespawn; e++ {
			if !seen[pair{p, e}] {
				t.Errorf("table: %s + %s missing", p, e)
			}
		}
	}
	if want := len(phaseNames) * len(eventNames); len(tests) != want {
		t.Errorf("table has %d rows, want %d (phases x events)", len(tests), want)
	}

	for _, tt := range tests {
		next, acts := Decide(tt.phase, tt.event)
		if next != tt.next || !slices.Equal(acts, tt.acts) {
			t.Errorf("Decide(%s, %s) = %s %v, want %s %v", tt.phase, tt.event, next, acts, tt.next, tt.acts)
		}
	}
}

// TestNames: every phase, event and action has a name of its own (the
// debug log line of each transition prints them).
func TestNames(t *testing.T) {
	if got, want := len(phaseNames), int(Done)+1; got != want {
		t.Errorf("%d phase names, want %d", got, want)
	}
	if got, want := len(eventNames), int(EvRespawn)+1; got != want {
		t.Errorf("%d event names, want %d", got, want)
	}
	if got, want := len(actionNames), int(ActRespawn)+1; got != want {
		t.Errorf("%d action names, want %d", got, want)
	}
	for _, names := range [][]string{phaseNames[:], eventNames[:], actionNames[:]} {
		seen := map[string]bool{}
		for _, n := range names {
			if n == "" || seen[n] {
				t.Errorf("name %q empty or repeated", n)
			}
			seen[n] = true
		}
	}
}
