package queuesplit

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/queuesplit/sqstest"
)

func motoClient(t *testing.T) *sqs.Client {
	t.Helper()
	endpoint := sqstest.Start(t)
	c, err := NewClient(context.Background(), Access{Region: "us-east-1", Endpoint: endpoint, AccessKeyID: "test", SecretAccessKey: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createQueue(t *testing.T, c *sqs.Client, name string, attrs map[string]string, tags map[string]string) string {
	t.Helper()
	out, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

func sendTo(t *testing.T, c *sqs.Client, q, body string, attrs map[string]string, group string) {
	t.Helper()
	in := &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body), MessageAttributes: map[string]types.MessageAttributeValue{}}
	for k, v := range attrs {
		in.MessageAttributes[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	if group != "" {
		in.MessageGroupId = aws.String(group)
	}
	if _, err := c.SendMessage(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

// receiveAll reads q until it is empty, deleting what it read: bodies, with each message's
// "developer" attribute after a slash.
func receiveAll(t *testing.T, c *sqs.Client, q string) []string {
	t.Helper()
	var got []string
	for {
		out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(q), MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return got
		}
		for _, m := range out.Messages {
			got = append(got, aws.ToString(m.Body)+"/"+StringAttributes(m)["developer"])
			if _, err := c.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(q), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestMoveWithMoto splits a queue of a real SQS-compatible server (moto's) between two
// sessions and the fallback: every message reaches exactly the queue its attributes say,
// once, with its body and attributes; then the fallback drains back into the original.
func TestMoveWithMoto(t *testing.T) {
	c := motoClient(t)
	ctx := context.Background()
	orig := createQueue(t, c, "orders", map[string]string{"VisibilityTimeout": "40"}, map[string]string{"team": "shop"})
	tags := func(role, owner string) map[string]string {
		return SplitQueueTags(nil, map[string]string{"split-by": "mirrord"}, "shop/orders", role, owner)
	}
	fallbackName := QueueName(RoleFallback, []string{"c2"}, "orders")
	fallback, err := EnsureQueue(ctx, c, fallbackName, orig, tags(RoleFallback, "c2"))
	if err != nil {
		t.Fatal(err)
	}
	if again, err := EnsureQueue(ctx, c, fallbackName, orig, tags(RoleFallback, "c2")); err != nil || again != fallback {
		t.Fatalf("making the fallback again: %s, %v", again, err)
	}
	alice, err := EnsureQueue(ctx, c, QueueName(RoleSession, []string{"shop/alice"}, "orders"), orig, tags(RoleSession, "shop/alice"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := EnsureQueue(ctx, c, QueueName(RoleSession, []string{"shop/bob"}, "orders"), orig, tags(RoleSession, "shop/bob"))
	if err != nil {
		t.Fatal(err)
	}
	// A split queue is like the original, and tagged as the split's.
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(alice), AttributeNames: []types.QueueAttributeName{"VisibilityTimeout"}})
	if err != nil || attrs.Attributes["VisibilityTimeout"] != "40" {
		t.Errorf("alice's queue's visibility timeout: %v, %v", attrs, err)
	}
	made, err := SplitQueues(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != 3 || made[alice][TagOwner] != "shop/alice" || made[alice]["team"] != "shop" || made[fallback][TagRole] != RoleFallback {
		t.Errorf("the split's queues: %v", made)
	}

	filters := []Filter{mustFilterTo(t, "alice", alice, "^alice$"), mustFilterTo(t, "bob", bob, "^bob$")}
	want := map[string][]string{}
	for i := range 45 {
		dev := []string{"alice", "bob", "carol"}[i%3]
		body := fmt.Sprintf("m%02d", i)
		sendTo(t, c, orig, body, map[string]string{"developer": dev}, "")
		dst := fallback
		if dev != "carol" {
			dst = map[string]string{"alice": alice, "bob": bob}[dev]
		}
		want[dst] = append(want[dst], body+"/"+dev)
	}
	route := func(m types.Message) string {
		if i := Route(StringAttributes(m), filters); i >= 0 {
			return filters[i].Queue
		}
		return fallback
	}
	total := 0
	for deadline := time.Now().Add(30 * time.Second); total < 45 && time.Now().Before(deadline); {
		moved, err := Move(ctx, c, orig, time.Second, route)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range moved {
			total += n
		}
	}
	if total != 45 {
		t.Fatalf("moved %d of 45 messages", total)
	}
	for _, q := range []string{alice, bob, fallback} {
		got := receiveAll(t, c, q)
		sort.Strings(got)
		sort.Strings(want[q])
		if fmt.Sprint(got) != fmt.Sprint(want[q]) {
			t.Errorf("%s holds %v, want %v", NameOf(q), got, want[q])
		}
	}

	// The end of a split: what the fallback holds goes back to the original.
	for i := range 12 {
		sendTo(t, c, fallback, "late"+strconv.Itoa(i), map[string]string{"developer": "carol"}, "")
	}
	n, err := Drain(ctx, c, fallback, orig)
	if err != nil || n != 12 {
		t.Fatalf("drained %d of 12: %v", n, err)
	}
	if got := receiveAll(t, c, orig); len(got) != 12 {
		t.Errorf("the original holds %d messages after the drain, want 12: %v", len(got), got)
	}
	for _, q := range []string{alice, bob, fallback, fallback} { // twice: a queue already gone is fine
		if err := DeleteQueue(ctx, c, q); err != nil {
			t.Error(err)
		}
	}
	if made, err := SplitQueues(ctx, c); err != nil || len(made) != 0 {
		t.Errorf("queues left: %v, %v", made, err)
	}
}

// TestMoveFIFOWithMoto: on a FIFO queue, the copies keep their group, and a message moved
// twice (a forwarder killed between send and delete) is taken once.
func TestMoveFIFOWithMoto(t *testing.T) {
	c := motoClient(t)
	ctx := context.Background()
	orig := createQueue(t, c, "events.fifo", map[string]string{"FifoQueue": "true"}, nil)
	dst, err := EnsureQueue(ctx, c, QueueName(RoleSession, []string{"a"}, orig), orig, SplitQueueTags(nil, nil, "x/y", RoleSession, "a"))
	if err != nil {
		t.Fatal(err)
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(orig), MessageBody: aws.String("e1"), MessageGroupId: aws.String("g7"), MessageDeduplicationId: aws.String("d1")}
	if _, err := c.SendMessage(ctx, in); err != nil {
		t.Fatal(err)
	}
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(orig), WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v %v", out, err)
	}
	// The first forwarder sends the copy and dies before deleting the original.
	if _, err := send(ctx, c, dst, out.Messages); err != nil {
		t.Fatal(err)
	}
	// Its visibility ends (at once here): the next forwarder moves the message again.
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(orig), ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	moved, err := Move(ctx, c, orig, time.Second, func(types.Message) string { return dst })
	if err != nil || moved[dst] != 1 {
		t.Fatalf("moved %v: %v", moved, err)
	}
	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dst), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 1 || got.Messages[0].Attributes["MessageGroupId"] != "g7" {
		t.Errorf("the FIFO copy: %d messages %+v, want one of group g7", len(got.Messages), got.Messages)
	}
}

func mustFilterTo(t *testing.T, session, queue, developer string) Filter {
	t.Helper()
	f, err := CompileFilter(session, queue, map[string]string{"developer": developer})
	if err != nil {
		t.Fatal(err)
	}
	return f
}
