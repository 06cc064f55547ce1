package session

import (
	"fmt"
	"slices"
	"strings"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// QueuesReady says whether s's split queues are ready: every cluster that reports a queue
// has it ready, and the Default cluster named the session's own queue for each. If not, it
// says what waits ("c2: orders: the consumer is rolling to the fallback queue").
func QueuesReady(s *mirrordv1alpha1.MirrordSession) (bool, string) {
	asked := s.Spec.Features.SplitQueues
	if len(asked) == 0 {
		return true, ""
	}
	var waits []string
	sawDefault := false
	for _, c := range s.Status.Clusters {
		isDefault := slices.Contains(c.Roles, mirrordv1alpha1.ClusterRoleDefault)
		sawDefault = sawDefault || isDefault
		if !isDefault && len(c.Queues) == 0 {
			continue // a Workload cluster that splits nothing for this session
		}
		for _, q := range asked {
			i := slices.IndexFunc(c.Queues, func(st mirrordv1alpha1.SessionQueueStatus) bool { return st.QueueID == q.QueueID })
			switch {
			case i < 0:
				waits = append(waits, fmt.Sprintf("%s: %s: not reported yet", c.Name, q.QueueID))
			case !c.Queues[i].Ready:
				waits = append(waits, fmt.Sprintf("%s: %s: %s", c.Name, q.QueueID, c.Queues[i].Message))
			case isDefault && c.Queues[i].Value == "":
				waits = append(waits, fmt.Sprintf("%s: %s: the session's queue is not named yet", c.Name, q.QueueID))
			}
		}
	}
	if !sawDefault {
		waits = append(waits, "the Default cluster has not reported yet")
	}
	return len(waits) == 0, strings.Join(waits, "; ")
}

// QueueEnv is what the session's command gets in the consumer's queue variables: the
// session's own queues, as the Default cluster named them.
func QueueEnv(s *mirrordv1alpha1.MirrordSession) map[string]string {
	out := map[string]string{}
	for _, c := range s.Status.Clusters {
		if !slices.Contains(c.Roles, mirrordv1alpha1.ClusterRoleDefault) {
			continue
		}
		for _, q := range c.Queues {
			if q.Ready && q.Variable != "" && q.Value != "" {
				out[q.Variable] = q.Value
			}
		}
	}
	return out
}
