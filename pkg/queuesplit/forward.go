package queuesplit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Limits of moving messages.
const (
	// ReceiveBatch is how many messages one receive takes (SQS's maximum).
	ReceiveBatch = 10
	// ReceiveWait is a forwarder's long poll: how soon it sees a message on an idle queue, and
	// how long it takes to stop.
	ReceiveWait = 2 * time.Second
	// MoveVisibility hides a received message from other readers while it is moved: a
	// forwarder killed in between leaves it to be moved again this much later.
	MoveVisibility = 30 * time.Second
)

// StringAttributes are a message's attributes that a filter can match: those of type String
// or Number (and their custom subtypes), by name.
func StringAttributes(m types.Message) map[string]string {
	out := make(map[string]string, len(m.MessageAttributes))
	for name, v := range m.MessageAttributes {
		t := aws.ToString(v.DataType)
		if (strings.HasPrefix(t, "String") || strings.HasPrefix(t, "Number")) && v.StringValue != nil {
			out[name] = *v.StringValue
		}
	}
	return out
}

// copyEntry is the message to send in m's place: its body and attributes, and on a FIFO
// queue its group and deduplication id (the original's id when the producer gave none, so
// that a copy sent twice by a forwarder restarted in between is taken once).
func copyEntry(id string, m types.Message, fifo bool) types.SendMessageBatchRequestEntry {
	e := types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: m.Body, MessageAttributes: m.MessageAttributes}
	if fifo {
		e.MessageGroupId = aws.String(m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)])
		dedup := m.Attributes[string(types.MessageSystemAttributeNameMessageDeduplicationId)]
		if dedup == "" {
			dedup = aws.ToString(m.MessageId)
		}
		e.MessageDeduplicationId = aws.String(dedup)
	}
	return e
}

// Move receives up to ReceiveBatch messages from src, waiting up to wait for the first, and
// moves each to the queue route names: sent there, then deleted from src. A message is
// deleted only once its copy is sent, so nothing is lost when a move fails or the mover is
// killed; it is moved again after MoveVisibility (SQS itself delivers at least once). It
// returns how many messages went to each queue.
func Move(ctx context.Context, c *sqs.Client, src string, wait time.Duration, route func(types.Message) string) (map[string]int, error) {
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(src),
		MaxNumberOfMessages:         ReceiveBatch,
		WaitTimeSeconds:             int32(wait / time.Second),
		VisibilityTimeout:           int32(MoveVisibility / time.Second),
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	if err != nil {
		return nil, fmt.Errorf("receiving from %s: %w", src, err)
	}
	byQueue := map[string][]types.Message{}
	var order []string
	for _, m := range out.Messages {
		dst := route(m)
		if _, ok := byQueue[dst]; !ok {
			order = append(order, dst)
		}
		byQueue[dst] = append(byQueue[dst], m)
	}
	moved := map[string]int{}
	var errs error
	for _, dst := range order {
		sent, err := send(ctx, c, dst, byQueue[dst])
		errs = errors.Join(errs, err)
		if len(sent) == 0 {
			continue
		}
		n, err := deleteMessages(ctx, c, src, sent)
		errs = errors.Join(errs, err)
		moved[dst] += n
	}
	return moved, errs
}

// send sends msgs to dst in one batch and returns those sent.
func send(ctx context.Context, c *sqs.Client, dst string, msgs []types.Message) ([]types.Message, error) {
	fifo := strings.HasSuffix(NameOf(dst), ".fifo")
	entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = copyEntry(strconv.Itoa(i), m, fifo)
	}
	out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(dst), Entries: entries})
	var tooLong *types.BatchRequestTooLong
	if errors.As(err, &tooLong) { // large messages: one by one
		var sent []types.Message
		var errs error
		for i, m := range msgs {
			e := entries[i]
			_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dst), MessageBody: e.MessageBody,
				MessageAttributes: e.MessageAttributes, MessageGroupId: e.MessageGroupId, MessageDeduplicationId: e.MessageDeduplicationId})
			if err != nil {
				errs = errors.Join(errs, fmt.Errorf("sending to %s: %w", dst, err))
				continue
			}
			sent = append(sent, m)
		}
		return sent, errs
	}
	if err != nil {
		return nil, fmt.Errorf("sending to %s: %w", dst, err)
	}
	var sent []types.Message
	for _, s := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(s.Id)); err == nil && i >= 0 && i < len(msgs) {
			sent = append(sent, msgs[i])
		}
	}
	if len(out.Failed) > 0 {
		f := out.Failed[0]
		err = fmt.Errorf("sending %d of %d messages to %s: %s: %s", len(out.Failed), len(msgs), dst, aws.ToString(f.Code), aws.ToString(f.Message))
	}
	return sent, err
}

// deleteMessages deletes msgs from src and counts those deleted.
func deleteMessages(ctx context.Context, c *sqs.Client, src string, msgs []types.Message) (int, error) {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
	}
	out, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(src), Entries: entries})
	if err != nil {
		return 0, fmt.Errorf("deleting moved messages from %s: %w", src, err)
	}
	if len(out.Failed) > 0 {
		f := out.Failed[0]
		err = fmt.Errorf("deleting %d moved messages from %s: %s: %s", len(out.Failed), src, aws.ToString(f.Code), aws.ToString(f.Message))
	}
	return len(out.Successful), err
}

// Counts are a queue's approximate numbers of messages: waiting, and received but not yet
// deleted (in flight).
func Counts(ctx context.Context, c *sqs.Client, queueURL string) (waiting, inFlight int, err error) {
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL), AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, 0, fmt.Errorf("reading queue %s: %w", queueURL, err)
	}
	waiting, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	inFlight, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return waiting, inFlight, nil
}

// Drain moves every message of from into to, until from holds none, also none in flight
// (messages a reader held come back once their visibility ends), or ctx ends. It returns
// how many it moved.
func Drain(ctx context.Context, c *sqs.Client, from, to string) (int, error) {
	total := 0
	for {
		moved, err := Move(ctx, c, from, time.Second, func(types.Message) string { return to })
		total += moved[to]
		if err != nil {
			return total, err
		}
		if moved[to] > 0 {
			continue
		}
		waiting, inFlight, err := Counts(ctx, c, from)
		if err != nil {
			return total, err
		}
		if waiting == 0 && inFlight == 0 {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("queue %s still holds %d messages (%d in flight): %w", from, waiting+inFlight, inFlight, err)
		}
	}
}
