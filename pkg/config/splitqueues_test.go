package config

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSplitQueues(t *testing.T) {
	for name, tc := range map[string]struct {
		in      string
		want    []QueueSplit
		errKey  string
		errText string
	}{
		"map form": {in: `{"orders": {"queue_type": "SQS", "message_filter": {"tenant": "^acme$", "dev": "alice"}}, "*": {"queue_type": "SQS", "message_filter": {"x": "."}}}`,
			want: []QueueSplit{{QueueID: "*", Type: "SQS", MessageFilter: map[string]string{"x": "."}},
				{QueueID: "orders", Type: "SQS", MessageFilter: map[string]string{"tenant": "^acme$", "dev": "alice"}}}},
		"list form": {in: `[{"queue_id": "orders", "queue_type": "SQS", "queue_mode": "steal", "message_filter": {"region": "^eu"}}]`,
			want: []QueueSplit{{QueueID: "orders", Type: "SQS", MessageFilter: map[string]string{"region": "^eu"}}}},
		"look-around, as mirrord's regexes": {in: `{"q": {"queue_type": "SQS", "message_filter": {"who": "^(?!bot).*"}}}`,
			want: []QueueSplit{{QueueID: "q", Type: "SQS", MessageFilter: map[string]string{"who": "^(?!bot).*"}}}},
		"empty": {in: `{}`},
		"the same id twice": {in: `[{"queue_id": "q", "queue_type": "SQS", "message_filter": {"a": "b"}}, {"queue_id": "q", "queue_type": "SQS", "message_filter": {"a": "c"}}]`,
			errKey: "feature.split_queues[1]", errText: `queue "q" (SQS) is split twice`},
		"a list entry without its id": {in: `[{"queue_type": "SQS", "message_filter": {"a": "b"}}]`, errKey: "feature.split_queues[0].queue_id", errText: "required"},
		"no type":                     {in: `{"q": {"message_filter": {"a": "b"}}}`, errKey: "feature.split_queues.q.queue_type", errText: "required: SQS"},
		"Kafka, not yet":              {in: `{"q": {"queue_type": "Kafka", "message_filter": {"a": "b"}}}`, errKey: "feature.split_queues.q.queue_type", errText: "Kafka queues are not split yet: kubectl-mirrord splits SQS queues"},
		"an unknown type":             {in: `{"q": {"queue_type": "sqs", "message_filter": {"a": "b"}}}`, errKey: "feature.split_queues.q.queue_type", errText: `unknown queue type "sqs": use one of SQS, Kafka`},
		"a jq filter":                 {in: `{"q": {"queue_type": "SQS", "jq_filter": ".Body"}}`, errKey: "feature.split_queues.q.jq_filter", errText: "jq filters are not supported yet"},
		"mirror mode":                 {in: `{"q": {"queue_type": "SQS", "queue_mode": "mirror", "message_filter": {"a": "b"}}}`, errKey: "feature.split_queues.q.queue_mode", errText: "mirror is not supported yet"},
		"a bad mode":                  {in: `{"q": {"queue_type": "SQS", "queue_mode": "copy", "message_filter": {"a": "b"}}}`, errKey: "feature.split_queues.q.queue_mode"},
		"no filter":                   {in: `{"q": {"queue_type": "SQS"}}`, errKey: "feature.split_queues.q.message_filter", errText: "required"},
		"an empty filter":             {in: `{"q": {"queue_type": "SQS", "message_filter": {}}}`, errKey: "feature.split_queues.q.message_filter", errText: "would take every message"},
		"a bad regex":                 {in: `{"q": {"queue_type": "SQS", "message_filter": {"a": "(unclosed"}}}`, errKey: "feature.split_queues.q.message_filter.a", errText: "not a regex"},
		"an unknown key":              {in: `{"q": {"queue_type": "SQS", "message_filter": {"a": "b"}, "filter": {}}}`, errKey: "feature.split_queues.q.filter", errText: "unknown key"},
		"neither map nor list":        {in: `"orders"`, errKey: "feature.split_queues", errText: "expected a table of QUEUE_ID"},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f := &File{}
		err := f.readSplitQueues(node{path: "feature.split_queues", v: v})
		if tc.errKey != "" {
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != tc.errKey || !strings.Contains(ce.Msg, tc.errText) {
				t.Errorf("%s: %v, want an error on %s saying %q", name, err, tc.errKey, tc.errText)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(f.SplitQueues, tc.want) {
			t.Errorf("%s: %+v (%v), want %+v", name, f.SplitQueues, err, tc.want)
		}
	}
	// A valid split reaches the session's features; a filter for every queue ("*") is refused.
	f, err := Parse([]byte(`{"feature": {"split_queues": {"q": {"queue_type": "SQS", "message_filter": {"a": "b"}}}}}`), "json")
	if err != nil || len(f.Features.SplitQueues) != 1 || f.Features.SplitQueues[0].QueueID != "q" || f.Features.SplitQueues[0].MessageFilter["a"] != "b" {
		t.Errorf("a valid split: %+v, %v", f, err)
	}
	_, err = Parse([]byte(`{"feature": {"split_queues": {"*": {"queue_type": "SQS", "message_filter": {"a": "b"}}}}}`), "json")
	if err == nil || !strings.Contains(err.Error(), "name each queue id") {
		t.Errorf("every queue: %v", err)
	}
}
