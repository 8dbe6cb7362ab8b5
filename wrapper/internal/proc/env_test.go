package proc

import (
	"reflect"
	"testing"
)

func TestEnvEditingReplacesKeys(t *testing.T) {
	env := []string{"A=1", "NOTIFY_SOCKET=/run/systemd/notify", "B=2", "A=3", "WATCHDOG_USEC=100", "WATCHDOG_PID=5", "PATH=/bin"}
	if got, want := SetEnv(env, "A", "9"), []string{"NOTIFY_SOCKET=/run/systemd/notify", "B=2", "WATCHDOG_USEC=100", "WATCHDOG_PID=5", "PATH=/bin", "A=9"}; !reflect.DeepEqual(got, want) {
		t.Errorf("SetEnv: got %v, want %v", got, want)
	}
	if got, want := ChildEnv(env), []string{"A=1", "B=2", "A=3", "PATH=/bin"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ChildEnv: got %v, want %v", got, want)
	}
	if got, want := UnsetEnv([]string{"AB=1", "A=2"}, "A"), []string{"AB=1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("UnsetEnv matches a prefix: got %v, want %v", got, want)
	}
}
