package config

import (
	"slices"
	"strings"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/regex"
)

// QueueSplit is one entry of feature.split_queues: the messages of the queue an admin's queue
// registry names QueueID that the session's command gets.
type QueueSplit struct {
	// QueueID is the registry's queue id; "*" is every queue of the target's registry.
	QueueID string
	// Type is the broker: SQS.
	Type string
	// MessageFilter maps message attribute names to regexes (mirrord's syntax, look-around
	// included) that the attribute's value must match: a message matches when all do.
	MessageFilter map[string]string
}

// queueTypes are mirrord's queue_type values; only SQS is split here.
var queueTypes = []string{"SQS", "Kafka", "RMQ", "GCPPubSub", "RedisPubSub", "AzureServiceBus", "Temporal", "BullMQ"}

// readSplitQueues reads feature.split_queues in mirrord's two forms: a map of queue id to its
// filter, or a list of entries that each name their queue_id.
func (f *File) readSplitQueues(n node) error {
	var entries []node
	var ids []string
	if _, isMap := n.v.(map[string]any); isMap {
		m, err := n.anyObject()
		if err != nil {
			return err
		}
		for _, id := range sortedKeys(m) {
			entries, ids = append(entries, m[id]), append(ids, id)
		}
	} else {
		items, err := n.list()
		if err != nil {
			return n.errorf("expected a table of QUEUE_ID: {queue_type, message_filter}, or a list of {queue_id, queue_type, message_filter}, got %s", describe(n.v))
		}
		for _, item := range items {
			m, ok := item.v.(map[string]any)
			id, _ := m["queue_id"].(string)
			if !ok || id == "" {
				return item.child("queue_id").errorf("required: the id of the queue in the target's queue registry")
			}
			entries, ids = append(entries, item), append(ids, id)
		}
	}
	seen := map[string]bool{}
	for i, e := range entries {
		q, err := f.readQueueSplit(e, ids[i])
		if err != nil {
			return err
		}
		if seen[q.Type+"/"+q.QueueID] {
			return e.errorf("queue %q (%s) is split twice: give it one filter", q.QueueID, q.Type)
		}
		seen[q.Type+"/"+q.QueueID] = true
		f.SplitQueues = append(f.SplitQueues, q)
	}
	return nil
}

func (f *File) readQueueSplit(n node, id string) (QueueSplit, error) {
	q := QueueSplit{QueueID: id}
	m, err := n.object("queue_id", "queue_type", "queue_mode", "message_filter", "jq_filter", "payload_protobuf")
	if err != nil {
		return q, err
	}
	t, ok := m["queue_type"]
	if !ok {
		return q, n.child("queue_type").errorf("required: SQS (%s)", strings.Join(queueTypes, ", "))
	}
	if q.Type, err = t.str(); err != nil {
		return q, err
	}
	switch {
	case q.Type == "SQS":
	case slices.Contains(queueTypes, q.Type):
		return q, t.errorf("%s queues are not split yet: kubectl-mirrord splits SQS queues", q.Type)
	default:
		return q, t.errorf("unknown queue type %q: use one of %s", q.Type, strings.Join(queueTypes, ", "))
	}
	if mode, ok := m["queue_mode"]; ok {
		v, err := mode.oneOf("steal", "mirror")
		if err != nil {
			return q, err
		}
		if v == "mirror" {
			return q, mode.errorf("mirror is not supported yet: a matching message goes to this session only (steal)")
		}
	}
	if jq, ok := m["jq_filter"]; ok {
		return q, jq.errorf("jq filters are not supported yet: filter on message attributes with message_filter")
	}
	if p, ok := m["payload_protobuf"]; ok {
		return q, p.errorf("payload_protobuf applies to Kafka queues")
	}
	mf, ok := m["message_filter"]
	if !ok {
		return q, n.child("message_filter").errorf(`required: the message attributes this session's messages have, e.g. {"developer": "^alice$"}`)
	}
	attrs, err := mf.anyObject()
	if err != nil {
		return q, err
	}
	if len(attrs) == 0 {
		return q, mf.errorf("name at least one message attribute: an empty filter would take every message")
	}
	q.MessageFilter = map[string]string{}
	for _, name := range sortedKeys(attrs) {
		pattern, err := attrs[name].str()
		if err != nil {
			return q, err
		}
		if _, err := regex.Compile(pattern); err != nil {
			return q, attrs[name].errorf("not a regex: %v", err)
		}
		q.MessageFilter[name] = pattern
	}
	return q, nil
}

func sortedKeys(m map[string]node) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
