package supervisor

// The supervisor is an explicit state machine. Decide is its transition
// function: pure, so that every phase x event pair is table-tested. The loop
// (loop.go) turns raw events (signals, child exits, readiness results,
// control requests, timers) into Events, asks Decide, and carries out the
// Actions in order.

// Phase is where the supervisor is.
type Phase int

const (
	Starting  Phase = iota // the first generation is not serving yet
	Serving                // a generation serves, nothing in progress
	Reloading              // a new generation is being checked or started
	Upgrading              // a new wrapper binary is about to be executed (inside a reload)
	Stopping               // the stop signal went to every generation; waiting for them
	Done                   // nothing left: exit
)

var phaseNames = [...]string{"starting", "serving", "reloading", "upgrading", "stopping", "done"}

func (p Phase) String() string { return phaseNames[p] }

// Event is what happened, as the transition function sees it.
type Event int

const (
	EvReload       Event = iota // SIGUSR2, SIGHUP, or the reload command
	EvStop                      // SIGTERM, SIGINT
	EvGracefulStop              // SIGUSR1
	EvAbort                     // SIGABRT (systemd's watchdog)
	EvCheckPassed               // the configuration check passed (or is off): go on with the reload
	EvReloadHere                // go on with the reload in this image: new binary refused, exec failed, or this is the new image
	EvReady                     // the new generation serves
	EvStartFailed               // the new generation failed: check failed, exited, timed out, spawn failed
	EvServingDied               // the serving generation exited, or stopped serving
	EvOldExited                 // a draining generation exited
	EvNoneLeft                  // no haproxy process left (a reload's check may still run: nothing serves)
	EvRespawn                   // the serving generation crashed and may be replaced (HAPROXY_WRAPPER_RESPAWN_LIMIT)
)

var eventNames = [...]string{"reload", "stop", "graceful-stop", "abort", "check-passed", "reload-here",
	"ready", "start-failed", "serving-died", "old-exited", "none-left", "respawn"}

func (e Event) String() string { return eventNames[e] }

// Action is one thing the loop does, in the order Decide lists them.
type Action int

const (
	ActQueueReload    Action = iota // remember one more reload (coalesced)
	ActRefuseReload                 // answer a reload request: stopping
	ActBeginReload                  // RELOADING=1, start the check (or skip it)
	ActSpawnOrUpgrade               // the binary changed: probe and exec it; else spawn the new generation
	ActSpawn                        // spawn the new generation in this image
	ActFirstReady                   // READY=1, tell a -D parent, pid file
	ActReloadDone                   // READY=1 with the outcome, answer waiters, old generations drain
	ActReloadFailed                 // READY=1 with the failure, answer waiters
	ActStartFailed                  // the first start failed: say why, tell a -D parent
	ActForwardStop                  // STOPPING=1, the stop signal to every generation, cancel helpers
	ActKillAll                      // SIGKILL to every generation (watchdog abort)
	ActServingLost                  // nothing serves any more: the exit code is haproxy's
	ActRetire                       // forget an exited generation
	ActNextReload                   // start the queued reload, if any
	ActExit                         // leave the loop
	ActRespawn                      // start a generation in place of the dead one, from the held sockets
)

var actionNames = [...]string{"queue-reload", "refuse-reload", "begin-reload", "spawn-or-upgrade", "spawn",
	"first-ready", "reload-done", "reload-failed", "start-failed", "forward-stop", "kill-all", "serving-lost",
	"retire", "next-reload", "exit", "respawn"}

func (a Action) String() string { return actionNames[a] }

// Decide is the transition function. An event that means nothing in a
// phase leaves it unchanged with no action.
func Decide(p Phase, e Event) (Phase, []Action) {
	// Events with the same meaning in every live phase.
	switch e {
	case EvAbort:
		if p == Done {
			return Done, nil
		}
		return Done, []Action{ActKillAll, ActExit}
	case EvNoneLeft:
		switch p {
		case Stopping:
			return Done, []Action{ActExit}
		case Done:
			return Done, nil
		}
		// Every haproxy ended on its own (soft-stopped by hand, or died).
		return Done, []Action{ActServingLost, ActExit}
	case EvOldExited:
		if p == Done {
			return Done, nil
		}
		return p, []Action{ActRetire}
	}
	switch p {
	case Starting:
		switch e {
		case EvReload:
			return Starting, []Action{ActQueueReload}
		case EvStop, EvGracefulStop:
			return Stopping, []Action{ActForwardStop}
		case EvCheckPassed:
			return Starting, []Action{ActSpawn}
		case EvReady:
			return Serving, []Action{ActFirstReady, ActNextReload}
		case EvStartFailed:
			return Stopping, []Action{ActStartFailed, ActForwardStop}
		}
	case Serving:
		switch e {
		case EvReload:
			return Reloading, []Action{ActBeginReload}
		case EvStop, EvGracefulStop:
			return Stopping, []Action{ActForwardStop}
		case EvServingDied:
			return Stopping, []Action{ActServingLost, ActForwardStop}
		case EvRespawn:
			// A reload without RELOADING=1: its failure is the crash's.
			return Reloading, []Action{ActRetire, ActRespawn}
		}
	case Reloading:
		switch e {
		case EvReload:
			return Reloading, []Action{ActQueueReload}
		case EvStop, EvGracefulStop:
			return Stopping, []Action{ActReloadFailed, ActForwardStop}
		case EvCheckPassed:
			return Reloading, []Action{ActSpawnOrUpgrade}
		case EvReady:
			return Serving, []Action{ActReloadDone, ActNextReload}
		case EvStartFailed:
			return Serving, []Action{ActReloadFailed, ActNextReload}
		case EvServingDied:
			// The new generation may still take over; if it fails,
			// nothing serves (the loop checks when it settles).
			return Reloading, []Action{ActRetire}
		case EvReloadHere:
			// The new binary was refused, or this is the new image
			// resuming: the reload goes on in this image.
			return Reloading, []Action{ActSpawn}
		}
	case Upgrading:
		switch e {
		case EvReload:
			return Upgrading, []Action{ActQueueReload}
		case EvStop, EvGracefulStop:
			return Stopping, []Action{ActReloadFailed, ActForwardStop}
		case EvReloadHere:
			return Reloading, []Action{ActSpawn}
		case EvServingDied:
			return Upgrading, []Action{ActRetire}
		}
	case Stopping:
		switch e {
		case EvReload:
			return Stopping, []Action{ActRefuseReload}
		case EvStop:
			return Stopping, []Action{ActForwardStop} // a second signal: forwarded too (e.g. SIGTERM after SIGUSR1)
		case EvStartFailed, EvServingDied:
			return Stopping, []Action{ActRetire}
		}
	}
	return p, nil
}
