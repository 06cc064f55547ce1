// Package queuesplit splits SQS queues between the deployed consumer and developers'
// sessions: a forwarder reads the original queue and moves each message to the queue of the
// session whose filter it matches, or to the fallback queue the deployed consumer reads
// while the split lasts. What goes where is decided here, by pure functions; the SQS calls
// are a thin layer around them (sqs.go, forward.go).
package queuesplit

import (
	"fmt"
	"sort"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/regex"
)

// Filter is one session's claim on a queue's messages: every attribute it names must be
// present on a message with a value its regex matches (mirrord's message_filter).
type Filter struct {
	// Session names the session; Queue is the URL its messages go to.
	Session, Queue string
	// Attributes are the message attributes' regexes, by attribute name.
	Attributes map[string]regex.Regexp
}

// CompileFilter compiles a session's message_filter (attribute name to regex, mirrord's
// syntax).
func CompileFilter(session, queue string, patterns map[string]string) (Filter, error) {
	f := Filter{Session: session, Queue: queue, Attributes: map[string]regex.Regexp{}}
	if len(patterns) == 0 {
		return f, fmt.Errorf("session %s: an empty message filter would take every message", session)
	}
	for name, p := range patterns {
		re, err := regex.Compile(p)
		if err != nil {
			return f, fmt.Errorf("session %s: message_filter %s: %w", session, name, err)
		}
		f.Attributes[name] = re
	}
	return f, nil
}

// Matches says whether a message with these string attributes is the filter's.
func (f Filter) Matches(attrs map[string]string) bool {
	for name, re := range f.Attributes {
		v, ok := attrs[name]
		if !ok || !re.MatchString(v) {
			return false
		}
	}
	return len(f.Attributes) > 0
}

// Route is the index in filters of the session a message with attrs goes to, or -1 for the
// fallback queue (the deployed consumer). When several sessions' filters match, the first
// wins: callers order filters by session age (SortFilters), so a newer session cannot take
// an older one's messages by writing a wider filter.
func Route(attrs map[string]string, filters []Filter) int {
	for i, f := range filters {
		if f.Matches(attrs) {
			return i
		}
	}
	return -1
}

// SortFilters orders filters by the sessions' start (started[session]; unknown last), then name.
func SortFilters(filters []Filter, started map[string]int64) {
	sort.SliceStable(filters, func(i, j int) bool {
		a, aok := started[filters[i].Session]
		b, bok := started[filters[j].Session]
		if aok != bok {
			return aok
		}
		if a != b {
			return a < b
		}
		return filters[i].Session < filters[j].Session
	})
}
