package framework

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// SQSEndpoint is the rig's SQS, moto's server on the bridge (test/rig/sqs.go): pods of every
// cluster and this process reach it.
const SQSEndpoint = "http://172.30.0.1:5100"

// SQS is a client of the rig's SQS.
func (f *Framework) SQS() *sqs.Client {
	return sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(SQSEndpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
}

// CreateQueue creates an SQS queue on the rig and returns its URL; it is deleted when the
// test ends.
func (f *Framework) CreateQueue(ctx context.Context, name string) string {
	f.t.Helper()
	c := f.SQS()
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		f.t.Fatalf("creating queue %s: %v", name, err)
	}
	url := aws.ToString(out.QueueUrl)
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	})
	return url
}

// ConsumerApp deploys an SQS consumer (the sample app's `consume`) of the rig's queue named
// queue: it records each message it consumes in queue done as "BODY by deployed-CLUSTER".
func (f *Framework) ConsumerApp(ctx context.Context, c *Cluster, ns, name, queue, done string) {
	f.t.Helper()
	f.serveApp(ctx, c, ns, name, corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](2),
		Containers: []corev1.Container{{
			Name: "app", Image: f.SampleImage, ImagePullPolicy: corev1.PullNever,
			Args: []string{"consume", "-queue-var", "QUEUE", "-by", "deployed-" + c.Name},
			Env: []corev1.EnvVar{{Name: "QUEUE", Value: queue}, {Name: "DONE_QUEUE", Value: done},
				{Name: "SQS_ENDPOINT", Value: SQSEndpoint}, {Name: "CLUSTER_NAME", Value: c.Name}},
		}},
	})
}
