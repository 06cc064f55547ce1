package session

import (
	"fmt"
	"io"
	"strings"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Progress prints one line per cluster whenever its state changes (for Wait).
type Progress struct {
	Out  io.Writer
	seen map[string]string
	// Last describes the latest state, for a timeout's message.
	Last string
}

func (p *Progress) Print(s *mirrordv1alpha1.MirrordSession) {
	if p.seen == nil {
		p.seen = map[string]string{}
	}
	var parts []string
	for _, c := range s.Status.Clusters {
		line := fmt.Sprintf("%s %d/%d agents ready", c.Phase, c.ReadyAgents, c.Agents)
		if c.Error != "" {
			line += ": " + c.Error
		}
		for _, q := range c.Queues {
			switch {
			case q.Ready:
				line += fmt.Sprintf("; queue %s split", q.QueueID)
			case q.Message != "":
				line += fmt.Sprintf("; queue %s: %s", q.QueueID, q.Message)
			}
		}
		parts = append(parts, c.Name+": "+line)
		if p.seen[c.Name] != line {
			p.seen[c.Name] = line
			fmt.Fprintf(p.Out, "  %-12s %s\n", c.Name, line)
		}
	}
	p.Last = string(s.Status.Phase) + " (" + strings.Join(parts, "; ") + ")"
}
