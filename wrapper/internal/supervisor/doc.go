// Package supervisor is the wrapper's core: one goroutine (Run's loop) owns
// all state. Signals, child exits, helper results (configuration check,
// readiness, binary probe), control requests and timers arrive as values on
// channels; Decide (phase.go) says what each means in the current phase, and
// the loop carries out the actions. Helpers are goroutines that do one
// bounded thing and post one event; the loop counts them and exits only once
// every one has posted. Nothing imports this package but main.
//
// # Rooms
//
// The files, by the stage of a generation's life, lowest layer first. A
// file uses only files above it in this list, never one below: a stage's
// function that leads to another event hands it back (a *follow) to the
// loop instead of handling it, so that only loop.go calls handle.
// TestDocRooms (doc_test.go) checks the list, the order and the sizes.
//
//	phase.go       Decide: the transition function, pure (and its Phase, Event, Action)
//	atrest.go      waiting for the configuration to be at rest, pure
//	supervisor.go  the types: Config, the state an upgrade hands over, a generation, the Supervisor; New
//	generation.go  a generation's records: find, serving, own pids, signals, -sf list, drain limits, pid file
//	status.go      the status report, STATUS= and metrics, the watchdog
//	held.go        the held listening sockets: -x, taking them, systemd's store
//	reload.go      a reload: begin (the check's helper), spawn (haproxy's argv), settle; what a helper is
//	takeover.go    the new generation serves: old ones drain, took (pid file, held sockets)
//	start.go       the first start: haproxy -v, first ready, a failed start, the -D parent
//	respawn.go     the serving generation crashed: a reload from the held sockets
//	stop.go        a stop: forwardStop, the soft stop's grace, exit codes, cleanup
//	exit.go        a generation's end: failed start, serving died, none left
//	upgrade.go     re-executing a new binary: probe, hand-over, Resume
//	loop.go        the loop: Run, step, handle (Decide, then the actions), signalEvents, onRequest, onExit, onEvent; an upgrade's last moment
//
// # A SIGUSR2, from the signal to haproxy's argv
//
// 8 calls over 4 files (loop.go, phase.go, reload.go, haproxy/args.go),
// from the phase Serving with the binary unchanged: 9 functions one after
// the other, step to haproxy.ChildArgs. Each row is a call, caller ->
// callee, or, where it says "s.events", a helper's event that the caller's
// goroutine posts and the callee receives; the file is the one that
// declares the callee. doc_test.go checks that it does, and that the
// caller makes the call (or posts, and the callee receives). Counted are
// the calls that carry the reload on, and Decide's; the calls on the way
// that only give a value and return (upgradeWanted, oldPids, xSocket,
// haproxy.WriteReadyConfig, in the helper waitAtRest and check) are named
// in the notes, not counted:
//
//	hop 1  step -> handle         loop.go          the signal arrives on cfg.Signals: SIGUSR2 is EvReload (signalEvents)
//	hop 2  handle -> Decide       phase.go         Serving + EvReload: Reloading, [ActBeginReload]
//	hop 3  handle -> beginReload  reload.go        RELOADING=1, then the check's helper
//	hop 4  beginReload -> step    loop.go          s.events: the helper (waitAtRest, haproxy -c) posts EvCheckPassed
//	hop 5  step -> handle         loop.go          evDecided: the Event as the helper decided it
//	hop 6  handle -> Decide       phase.go         Reloading + EvCheckPassed: Reloading, [ActSpawnOrUpgrade]
//	hop 7  handle -> spawn        reload.go        upgradeWanted (upgrade.go) said no
//	hop 8  spawn -> ChildArgs     haproxy/args.go  -sf: oldPids (generation.go), -x: xSocket (held.go)
//
// The new generation's readiness comes back the same way (a helper posts
// evReadyResult, onEvent) to takeover.go: ready, took.
package supervisor
