package queuesplit

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func mustFilter(t *testing.T, session string, patterns map[string]string) Filter {
	t.Helper()
	f, err := CompileFilter(session, "q-"+session, patterns)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRoute(t *testing.T) {
	alice := mustFilter(t, "alice", map[string]string{"developer": "^alice$"})
	bob := mustFilter(t, "bob", map[string]string{"developer": "^bob$", "kind": "^(order|refund)$"})
	anyone := mustFilter(t, "wide", map[string]string{"developer": ".*"})
	probe := mustFilter(t, "noprobe", map[string]string{"agent": "^(?!probe)"}) // look-around, as mirrord's fancy-regex takes
	cases := []struct {
		name    string
		attrs   map[string]string
		filters []Filter
		want    int
	}{
		{"no sessions: the fallback", map[string]string{"developer": "alice"}, nil, -1},
		{"a match", map[string]string{"developer": "alice"}, []Filter{alice, bob}, 0},
		{"every attribute must match", map[string]string{"developer": "bob", "kind": "audit"}, []Filter{alice, bob}, -1},
		{"all of them do", map[string]string{"developer": "bob", "kind": "refund", "extra": "x"}, []Filter{alice, bob}, 1},
		{"a missing attribute is no match", map[string]string{"kind": "order"}, []Filter{bob}, -1},
		{"no attributes at all", nil, []Filter{alice, anyone}, -1},
		{"the first matching session wins", map[string]string{"developer": "alice"}, []Filter{anyone, alice}, 0},
		{"anchors are the filter's: unanchored matches inside", map[string]string{"developer": "xalicex"}, []Filter{mustFilter(t, "a", map[string]string{"developer": "alice"})}, 0},
		{"look-ahead", map[string]string{"agent": "probe-1"}, []Filter{probe}, -1},
		{"look-ahead passes others", map[string]string{"agent": "curl"}, []Filter{probe}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Route(c.attrs, c.filters); got != c.want {
				t.Errorf("Route = %d, want %d", got, c.want)
			}
		})
	}
}

func TestCompileFilterRefuses(t *testing.T) {
	if _, err := CompileFilter("s", "q", nil); err == nil || !strings.Contains(err.Error(), "every message") {
		t.Errorf("empty filter: %v", err)
	}
	if _, err := CompileFilter("s", "q", map[string]string{"a": "("}); err == nil || !strings.Contains(err.Error(), "message_filter a") {
		t.Errorf("bad regex: %v", err)
	}
}

func TestSortFilters(t *testing.T) {
	fs := []Filter{{Session: "c"}, {Session: "unknown"}, {Session: "b"}, {Session: "a"}}
	SortFilters(fs, map[string]int64{"a": 20, "b": 10, "c": 20})
	var got []string
	for _, f := range fs {
		got = append(got, f.Session)
	}
	if want := "b a c unknown"; strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

func TestQueueName(t *testing.T) {
	long := strings.Repeat("x", 100)
	cases := []struct {
		name, role, original string
		owner                []string
		wantPrefix, wantEnd  string
	}{
		{"a name", RoleSession, "orders", []string{"ns/alice"}, "mirrord-s-", "-orders"},
		{"a URL", RoleFallback, "http://sqs.local:4566/000000000000/orders", []string{"c2"}, "mirrord-f-", "-orders"},
		{"FIFO kept", RoleSession, "orders.fifo", []string{"ns/alice"}, "mirrord-s-", "-orders.fifo"},
		{"odd characters", RoleSession, "a.b:c", []string{"x"}, "mirrord-s-", "-a-b-c"},
		{"long, FIFO", RoleSession, long + ".fifo", []string{"x"}, "mirrord-s-", "xxx.fifo"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := QueueName(c.role, c.owner, c.original)
			if !strings.HasPrefix(got, c.wantPrefix) || !strings.HasSuffix(got, c.wantEnd) || len(got) > maxQueueName {
				t.Errorf("QueueName = %q (%d), want %s...%s within %d", got, len(got), c.wantPrefix, c.wantEnd, maxQueueName)
			}
		})
	}
	if QueueName(RoleSession, []string{"ns/alice"}, "orders") == QueueName(RoleSession, []string{"ns/bob"}, "orders") {
		t.Error("two sessions share a queue name")
	}
	if QueueName(RoleSession, []string{"x"}, "orders") == QueueName(RoleFallback, []string{"x"}, "orders") {
		t.Error("a session's and a fallback's queue share a name")
	}
}

func TestSplitQueueAttributes(t *testing.T) {
	std := SplitQueueAttributes(map[string]string{"VisibilityTimeout": "45", "DelaySeconds": "5", "FifoQueue": "false",
		"ContentBasedDeduplication": "false", "QueueArn": "arn:x", "MessageRetentionPeriod": "600"})
	if len(std) != 2 || std["VisibilityTimeout"] != "45" || std["MessageRetentionPeriod"] != "600" {
		t.Errorf("standard queue: %v", std)
	}
	fifo := SplitQueueAttributes(map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true", "KmsMasterKeyId": "k"})
	if len(fifo) != 3 || fifo["FifoQueue"] != "true" || fifo["ContentBasedDeduplication"] != "true" || fifo["KmsMasterKeyId"] != "k" {
		t.Errorf("FIFO queue: %v", fifo)
	}
}

func TestSplitQueueTags(t *testing.T) {
	got := SplitQueueTags(map[string]string{"team": "a", "env": "prod"}, map[string]string{"env": "dev"}, "ns/reg", RoleSession, strings.Repeat("o", 300))
	if got["team"] != "a" || got["env"] != "dev" || got[TagSplit] != "ns/reg" || got[TagRole] != RoleSession || len(got[TagOwner]) != 256 {
		t.Errorf("tags %v", got)
	}
}

func TestCopyEntry(t *testing.T) {
	attrs := map[string]types.MessageAttributeValue{"developer": {DataType: aws.String("String"), StringValue: aws.String("alice")}}
	m := types.Message{MessageId: aws.String("id-1"), Body: aws.String("hello"), MessageAttributes: attrs,
		Attributes: map[string]string{"MessageGroupId": "g1"}}
	std := copyEntry("0", m, false)
	if aws.ToString(std.MessageBody) != "hello" || std.MessageAttributes["developer"].StringValue == nil || std.MessageGroupId != nil || std.MessageDeduplicationId != nil {
		t.Errorf("standard copy %+v", std)
	}
	fifo := copyEntry("0", m, true)
	if aws.ToString(fifo.MessageGroupId) != "g1" || aws.ToString(fifo.MessageDeduplicationId) != "id-1" {
		t.Errorf("FIFO copy without the producer's dedup id: %+v", fifo)
	}
	m.Attributes["MessageDeduplicationId"] = "d7"
	if got := copyEntry("0", m, true); aws.ToString(got.MessageDeduplicationId) != "d7" {
		t.Errorf("FIFO copy keeps the producer's dedup id: %+v", got)
	}
}

func TestStringAttributes(t *testing.T) {
	got := StringAttributes(types.Message{MessageAttributes: map[string]types.MessageAttributeValue{
		"s":   {DataType: aws.String("String"), StringValue: aws.String("a")},
		"n":   {DataType: aws.String("Number.int"), StringValue: aws.String("7")},
		"b":   {DataType: aws.String("Binary"), BinaryValue: []byte("x")},
		"nil": {DataType: aws.String("String")},
	}})
	if len(got) != 2 || got["s"] != "a" || got["n"] != "7" {
		t.Errorf("StringAttributes = %v", got)
	}
}
