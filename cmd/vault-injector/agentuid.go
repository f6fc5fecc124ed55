package main

import (
	"fmt"
	"strconv"
)

// agentUIDAuto leaves the injected containers' runAsUser/runAsGroup unset, for platforms that
// assign the UID themselves and refuse any other (OpenShift's restricted-v2 SCC).
const agentUIDAuto = "auto"

// agentUID is the value of --agent-uid: a UID, or "auto". A flag.Value rather than an int, so
// "unset" is a word an operator writes, not a magic number.
type agentUID struct {
	uid  int64
	auto bool
}

func (a *agentUID) String() string {
	if a.auto {
		return agentUIDAuto
	}
	return strconv.FormatInt(a.uid, 10)
}

// Set accepts "auto" or a UID of at least 1: UID 0 would contradict runAsNonRoot, which the
// kubelet enforces by refusing to start the container.
func (a *agentUID) Set(s string) error {
	if s == agentUIDAuto {
		*a = agentUID{auto: true}
		return nil
	}
	uid, err := strconv.ParseInt(s, 10, 64)
	if err != nil || uid < 1 || uid > 1<<31-1 {
		return fmt.Errorf("expected %s or a UID from 1 to 2147483647", agentUIDAuto)
	}
	*a = agentUID{uid: uid}
	return nil
}
