//go:build bench

package queuesplit

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kubectl-mirrord/kubectl-mirrord/test/bench/report"
)

// TestBenchForwarder measures a split queue's forwarder on a real SQS-compatible server
// (moto's, on loopback) against a consumer reading the queue itself, interleaved in one run:
// messages per second through the forwarder (receive, send, delete, in batches of 10)
// against a consumer's own receive-and-delete, and the delay a message takes to reach a
// long-polling consumer through the forwarder against straight from the queue.
func TestBenchForwarder(t *testing.T) {
	c := motoClient(t)
	ctx := context.Background()
	const n, reps, pings = 300, 5, 15
	orig := createQueue(t, c, "bench-orders", nil, nil)
	session := createQueue(t, c, "bench-session", nil, nil)
	fallback := createQueue(t, c, "bench-fallback", nil, nil)
	filters := []Filter{mustFilterTo(t, "alice", session, "^alice$")}
	route := func(m types.Message) string {
		if i := Route(StringAttributes(m), filters); i >= 0 {
			return filters[i].Queue
		}
		return fallback
	}
	fill := func(q string) {
		for i := 0; i < n; i += 10 {
			var entries []types.SendMessageBatchRequestEntry
			for j := range 10 {
				entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(fmt.Sprintf("m%d", i+j)),
					MessageAttributes: map[string]types.MessageAttributeValue{"developer": {DataType: aws.String("String"), StringValue: aws.String("alice")}}})
			}
			if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q), Entries: entries}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// consumeAll receives and deletes n messages of q, as a consumer does.
	consumeAll := func(q string) {
		for got := 0; got < n; {
			out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q), MaxNumberOfMessages: ReceiveBatch, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Messages) == 0 {
				continue
			}
			if _, err := deleteMessages(ctx, c, q, out.Messages); err != nil {
				t.Fatal(err)
			}
			got += len(out.Messages)
		}
	}
	var forwarded, direct []float64
	for range reps {
		fill(orig)
		start := time.Now()
		for moved := 0; moved < n; {
			m, err := Move(ctx, c, orig, time.Second, route)
			if err != nil {
				t.Fatal(err)
			}
			moved += m[session]
		}
		forwarded = append(forwarded, n/time.Since(start).Seconds())
		consumeAll(session) // not timed: empties the session queue
		fill(orig)
		start = time.Now()
		consumeAll(orig)
		direct = append(direct, n/time.Since(start).Seconds())
	}

	// Delivery delay: one message at a time to a consumer long-polling its queue, with the
	// forwarder running between the original and the session queue.
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for fctx.Err() == nil {
			_, _ = Move(fctx, c, orig, ReceiveWait, route)
		}
	}()
	plain := createQueue(t, c, "bench-plain", nil, nil)
	delay := func(send, read string) float64 {
		got := make(chan time.Time, 1)
		go func() {
			for {
				out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(read), WaitTimeSeconds: 5, MessageAttributeNames: []string{"All"}})
				if err != nil {
					t.Error(err)
					got <- time.Time{}
					return
				}
				if len(out.Messages) > 0 {
					got <- time.Now()
					_, _ = deleteMessages(ctx, c, read, out.Messages)
					return
				}
			}
		}()
		time.Sleep(100 * time.Millisecond) // the consumer is polling
		sent := time.Now()
		sendTo(t, c, send, "ping", map[string]string{"developer": "alice"}, "")
		return (<-got).Sub(sent).Seconds() * 1000
	}
	var through, straight []float64
	for range pings {
		through = append(through, delay(orig, session))
		straight = append(straight, delay(plain, plain))
	}
	stop()
	<-done

	rate := report.Row{Name: "SQS split: messages moved per second by a forwarder (moto, loopback)", Unit: "msg/s", Samples: forwarded,
		Baseline: "a consumer receiving and deleting the same messages itself", BaselineSamples: direct}
	rate.RatioAtLeast(0.5)
	latency := report.Row{Name: "SQS split: a message's delay to a long-polling consumer, through the forwarder", Unit: "ms", Samples: through,
		Baseline: "the consumer reading the queue it was sent to", BaselineSamples: straight}
	latency.RatioAtMost(3)
	report.Record(t, rate, latency)
}
