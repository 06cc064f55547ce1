package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// consume is an SQS consumer, as a queue's deployed consumer is written: it reads the
// queue named by the variable -queue-var (a name or URL) from the SQS endpoint in
// $SQS_ENDPOINT, and for each message prints "consumed BODY [NAME=VALUE ...] by BY" and, when
// $DONE_QUEUE names a queue, records "BODY by BY" there (a tally that outlives the consumer's
// pods), then deletes it.
func consume(args []string) error {
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	queueVar := fs.String("queue-var", "QUEUE", "the variable that names the queue")
	by := fs.String("by", "", "who consumes (default: the host name)")
	_ = fs.Parse(args)
	queue := os.Getenv(*queueVar)
	if queue == "" {
		return fmt.Errorf("$%s names no queue", *queueVar)
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = "us-east-1"
	}
	client := sqs.New(sqs.Options{Region: region, BaseEndpoint: aws.String(os.Getenv("SQS_ENDPOINT")),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	ctx := context.Background()
	url := queue
	if !strings.HasPrefix(queue, "http://") && !strings.HasPrefix(queue, "https://") {
		for {
			out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
			if err == nil {
				url = aws.ToString(out.QueueUrl)
				break
			}
			fmt.Fprintf(os.Stderr, "queue %s: %v\n", queue, err)
			time.Sleep(time.Second)
		}
	}
	if *by == "" {
		*by, _ = os.Hostname()
	}
	var done string
	if q := os.Getenv("DONE_QUEUE"); q != "" {
		out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q)})
		if err != nil {
			return fmt.Errorf("$DONE_QUEUE %s: %w", q, err)
		}
		done = aws.ToString(out.QueueUrl)
	}
	fmt.Printf("consuming %s\n", url)
	for {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 2, MessageAttributeNames: []string{"All"}})
		if err != nil {
			fmt.Fprintf(os.Stderr, "receiving: %v\n", err)
			time.Sleep(time.Second)
			continue
		}
		for _, m := range out.Messages {
			var attrs []string
			for k, v := range m.MessageAttributes {
				attrs = append(attrs, k+"="+aws.ToString(v.StringValue))
			}
			sort.Strings(attrs)
			fmt.Printf("consumed %s [%s] by %s\n", aws.ToString(m.Body), strings.Join(attrs, " "), *by)
			if done != "" {
				if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(done), MessageBody: aws.String(aws.ToString(m.Body) + " by " + *by)}); err != nil {
					fmt.Fprintf(os.Stderr, "recording: %v\n", err)
					continue // not deleted: it comes back
				}
			}
			if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				fmt.Fprintf(os.Stderr, "deleting: %v\n", err)
			}
		}
	}
}
