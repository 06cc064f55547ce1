package apitest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/member"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/queuesplit"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/queuesplit/sqstest"
)

// TestQueueSplit runs the controller (every role) against a real API server and a real
// SQS-compatible server (moto's): a session asking for a registry's queue gets its own queue,
// the consumer Deployment is pointed at a fallback queue (and recorded), and each message
// goes where its attributes say; once the session ends, the consumer is restored and, when
// it runs its old template again, the fallback's messages return to the original queue and
// no queue of the split is left. There is no Deployment controller here: the test plays it,
// reporting each rollout done.
func TestQueueSplit(t *testing.T) {
	t.Parallel()
	endpoint := sqstest.Start(t)
	s := Start(t)
	s.Install(t, "single-cluster")
	runController(t, s)
	ctx := t.Context()
	for _, ns := range []string{"hc"} {
		if _, err := s.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	client, err := queuesplit.NewClient(ctx, queuesplit.Access{Region: "us-east-1", Endpoint: endpoint, AccessKeyID: "test", SecretAccessKey: "test"})
	if err != nil {
		t.Fatal(err)
	}
	orig, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	origURL := aws.ToString(orig.QueueUrl)
	if _, err := s.Kube.CoreV1().Secrets("mirrord-system").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sqs"},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	worker := deployment("hc", "worker")
	worker.Spec.Replicas = ptr.To[int32](1)
	worker.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "QUEUE", Value: "orders"}, {Name: "OTHER", Value: "x"}}
	if _, err := s.Kube.AppsV1().Deployments("hc").Create(ctx, worker, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rolledOut(t, s, "hc", "worker")
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries("hc").Create(ctx, &mirrordv1alpha1.MirrordWorkloadQueueRegistry{
		ObjectMeta: metav1.ObjectMeta{Name: "worker-queues"},
		Spec: mirrordv1alpha1.MirrordWorkloadQueueRegistrySpec{
			Consumer: mirrordv1alpha1.QueueConsumer{Name: "worker", WorkloadType: mirrordv1alpha1.QueueConsumerDeployment},
			Queues: map[string]mirrordv1alpha1.SplitQueue{"orders": {QueueType: mirrordv1alpha1.QueueTypeSQS,
				NameSource: mirrordv1alpha1.QueueNameSource{EnvVar: "QUEUE"}, Tags: map[string]string{"team": "shop"}}},
			SQS: &mirrordv1alpha1.SQSAccess{Region: "us-east-1", Endpoint: endpoint, CredentialsSecret: "sqs"},
		}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	sess := session("hc", "Deployment", "worker", "hc")
	sess.Spec.Features.SplitQueues = []mirrordv1alpha1.QueueSplitRequest{{QueueID: "orders", MessageFilter: map[string]string{"developer": "^alice$"}}}
	created, err := create(t, s, "", sess)
	if err != nil {
		t.Fatal(err)
	}
	// The consumer is pointed at a fallback queue and its originals recorded.
	var fallback string
	waitFor(t, "the consumer pointed at a fallback queue", func(ctx context.Context) error {
		d, err := s.Kube.AppsV1().Deployments("hc").Get(ctx, "worker", metav1.GetOptions{})
		if err != nil {
			return err
		}
		env := d.Spec.Template.Spec.Containers[0].Env
		if len(env) != 2 || env[0].Name != "QUEUE" || !strings.HasPrefix(env[0].Value, "mirrord-f-") || env[1].Value != "x" {
			return fmt.Errorf("env %v", env)
		}
		if !strings.Contains(d.Annotations[member.AnnotationQueueSplit], `"QUEUE":{"value":"orders","present":true}`) {
			return fmt.Errorf("record %q", d.Annotations[member.AnnotationQueueSplit])
		}
		fallback = env[0].Value
		return nil
	})
	// Not ready until the consumer runs its new template; then the session is told its queue.
	child := func(ctx context.Context) (*mirrordv1alpha1.MirrordClusterSession, error) {
		l, err := s.Mirrord.MirrordV1alpha1().MirrordClusterSessions("mirrord-system").List(ctx, metav1.ListOptions{
			LabelSelector: labels.Set{mirrordv1alpha1.LabelParentUID: string(created.UID)}.String()})
		if err != nil || len(l.Items) != 1 {
			return nil, fmt.Errorf("%d children: %v", len(l.Items), err)
		}
		return &l.Items[0], nil
	}
	waitFor(t, "the child told the consumer is rolling", func(ctx context.Context) error {
		ch, err := child(ctx)
		if err != nil {
			return err
		}
		if q := ch.Status.Queues; len(q) != 1 || q[0].Ready || !strings.Contains(q[0].Message, "rolling to the fallback queue") {
			return fmt.Errorf("queues %+v", q)
		}
		return nil
	})
	rolledOut(t, s, "hc", "worker")
	var mine string
	waitFor(t, "the child's queue ready", func(ctx context.Context) error {
		ch, err := child(ctx)
		if err != nil {
			return err
		}
		q := ch.Status.Queues
		if len(q) != 1 || !q[0].Ready || q[0].Variable != "QUEUE" || !strings.HasPrefix(q[0].Value, "mirrord-s-") {
			return fmt.Errorf("queues %+v", q)
		}
		mine = q[0].Value
		return nil
	})
	// The Primary passes it on to the session.
	waitFor(t, "the session told its queue", func(ctx context.Context) error {
		got, err := s.Mirrord.MirrordV1alpha1().MirrordSessions("hc").Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range got.Status.Clusters {
			if len(c.Queues) == 1 && c.Queues[0].Value == mine && c.Queues[0].Ready {
				return nil
			}
		}
		return fmt.Errorf("clusters %+v", got.Status.Clusters)
	})
	// The registry counts the live split, and where it is ready (`kubectl mirrord queues`).
	registrySplits := func(want int32) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			r, err := s.Mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries("hc").Get(ctx, "worker-queues", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if r.Status.Splits != want || len(r.Status.Clusters) != 1 || r.Status.Clusters[0].Splits != want {
				return fmt.Errorf("status %+v, want %d splits", r.Status, want)
			}
			return nil
		}
	}
	waitFor(t, "the registry counts one split", registrySplits(1))
	mineURL, fallbackURL := queueURL(t, client, mine), queueURL(t, client, fallback)
	tags, err := client.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(mineURL)})
	if err != nil || tags.Tags["team"] != "shop" || tags.Tags[queuesplit.TagOwner] != "hc/"+created.Name {
		t.Errorf("the session queue's tags: %v, %v", tags, err)
	}

	for i, dev := range []string{"alice", "bob", "alice", "carol"} {
		send(t, client, origURL, fmt.Sprintf("m%d-%s", i, dev), dev)
	}
	waitFor(t, "alice's messages in her queue, the rest in the fallback", func(ctx context.Context) error {
		a, _, err := queuesplit.Counts(ctx, client, mineURL)
		if err != nil {
			return err
		}
		f, _, err := queuesplit.Counts(ctx, client, fallbackURL)
		if err != nil {
			return err
		}
		if a != 2 || f != 2 {
			return fmt.Errorf("alice's queue holds %d (want 2), the fallback %d (want 2)", a, f)
		}
		return nil
	})

	// The session ends: the consumer is restored; once it runs its old template, both split
	// queues return what they hold to the original and go.
	if err := s.Mirrord.MirrordV1alpha1().MirrordSessions("hc").Delete(ctx, created.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer restored", func(ctx context.Context) error {
		d, err := s.Kube.AppsV1().Deployments("hc").Get(ctx, "worker", metav1.GetOptions{})
		if err != nil {
			return err
		}
		env := d.Spec.Template.Spec.Containers[0].Env
		if len(env) != 2 || env[0].Value != "orders" || !strings.Contains(d.Annotations[member.AnnotationQueueSplit], `"restored":true`) {
			return fmt.Errorf("env %v, annotations %v", env, d.Annotations)
		}
		return nil
	})
	rolledOut(t, s, "hc", "worker")
	waitFor(t, "the registry counts no split", registrySplits(0))
	waitFor(t, "the split's queues drained into the original and gone", func(ctx context.Context) error {
		made, err := queuesplit.SplitQueues(ctx, client)
		if err != nil {
			return err
		}
		if len(made) > 0 {
			return fmt.Errorf("left: %v", made)
		}
		waiting, inFlight, err := queuesplit.Counts(ctx, client, origURL)
		if err != nil || waiting+inFlight != 4 {
			return fmt.Errorf("the original holds %d of 4 (%d in flight): %v", waiting+inFlight, inFlight, err)
		}
		d, err := s.Kube.AppsV1().Deployments("hc").Get(ctx, "worker", metav1.GetOptions{})
		if err != nil || d.Annotations[member.AnnotationQueueSplit] != "" {
			return fmt.Errorf("the consumer's record is left: %v %v", d.Annotations, err)
		}
		return nil
	})
}

// rolledOut reports deployment ns/name's current template rolled out, as its controller would.
func rolledOut(t *testing.T, s *Server, ns, name string) {
	t.Helper()
	d, err := s.Kube.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := *d.Spec.Replicas
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	if _, err := s.Kube.AppsV1().Deployments(ns).UpdateStatus(t.Context(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func queueURL(t *testing.T, c *sqs.Client, name string) string {
	t.Helper()
	u, err := queuesplit.QueueURL(t.Context(), c, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func send(t *testing.T, c *sqs.Client, url, body, dev string) {
	t.Helper()
	_, err := c.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
		MessageAttributes: map[string]types.MessageAttributeValue{"developer": {DataType: aws.String("String"), StringValue: aws.String(dev)}}})
	if err != nil {
		t.Fatal(err)
	}
}
