//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/queuesplit"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// TestQueueSplitting splits SQS queues on topology B: the Primary is management-only, c2 the
// Default and c3 another Workload cluster, each with the deployed consumer.
func TestQueueSplitting(t *testing.T) {
	f := framework.New(t)
	f.RequireClusters(3)
	setUp(t, f, topologyB)
	testQueueSplitting(t, f, f.Clusters[0], f.Clusters[1], f.Clusters[2])
}

// testQueueSplitting is issue 24's proof, on a real SQS-compatible server (moto's, on the
// rig): a consumer Deployment reads queue orders in every Workload cluster; an admin's queue
// registry on the Primary names it; alice and bob each run the consumer locally with a filter
// on the message attribute "developer". Of 30 messages for alice, bob and carol, each
// developer's local consumer gets exactly theirs and the deployed consumers carol's: none
// lost, none twice. When both sessions end, the deployed consumers read orders again (what
// comes next is theirs) and no queue of the split is left.
func testQueueSplitting(t *testing.T, f *framework.Framework, p *framework.Cluster, workloads ...*framework.Cluster) {
	ctx := f.Context(8 * time.Minute)
	ns := f.SharedNamespace(f.Clusters...)
	queue, done := "orders-"+ns, "done-"+ns
	orders := f.CreateQueue(ctx, queue)
	doneURL := f.CreateQueue(ctx, done)
	for _, c := range workloads {
		// The SQS credentials each Workload cluster's admin gives its controller.
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sqs-" + ns}, StringData: map[string]string{
			"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}}
		if _, err := c.Kube.CoreV1().Secrets(controllerNS).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.Kube.CoreV1().Secrets(controllerNS).Delete(context.Background(), secret.Name, metav1.DeleteOptions{})
		})
		f.ConsumerApp(ctx, c, ns, "worker", queue, done)
	}
	registry := &mirrordv1alpha1.MirrordWorkloadQueueRegistry{ObjectMeta: metav1.ObjectMeta{Name: "worker-queues", Namespace: ns},
		Spec: mirrordv1alpha1.MirrordWorkloadQueueRegistrySpec{
			Consumer: mirrordv1alpha1.QueueConsumer{Name: "worker", Container: "app", WorkloadType: mirrordv1alpha1.QueueConsumerDeployment},
			Queues: map[string]mirrordv1alpha1.SplitQueue{"orders": {QueueType: mirrordv1alpha1.QueueTypeSQS,
				NameSource: mirrordv1alpha1.QueueNameSource{EnvVar: "QUEUE"}, Tags: map[string]string{"team": "shop"}}},
			SQS: &mirrordv1alpha1.SQSAccess{Region: "us-east-1", Endpoint: framework.SQSEndpoint, CredentialsSecret: "sqs-" + ns},
		}}
	if _, err := p.Mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries(ns).Create(ctx, registry, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	echoBin := buildEcho(t)
	dir := t.TempDir()
	start := func(dev string) (*exec.Cmd, *framework.SyncBuffer) {
		cfg := filepath.Join(dir, dev+".json")
		body := fmt.Sprintf(`{"feature": {"network": {"incoming": "off"}, "split_queues": {"orders": {"queue_type": "SQS", "message_filter": {"developer": "^%s$"}}}}}`, dev)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return f.StartPlugin(p, "-n", ns, "exec", "-f", cfg, "-t", "deploy/worker", "--", echoBin, "consume", "-queue-var", "QUEUE", "-by", dev)
	}
	aliceCmd, aliceOut := start("alice")
	bobCmd, bobOut := start("bob")
	for dev, out := range map[string]*framework.SyncBuffer{"alice": aliceOut, "bob": bobOut} {
		text, err := out.WaitFor(ctx, "consuming ", 4*time.Minute)
		if err != nil {
			t.Fatalf("%s's consumer never started: %v", dev, err)
		}
		if !strings.Contains(text, "consuming "+framework.SQSEndpoint) || !strings.Contains(text, "/mirrord-s-") {
			t.Errorf("%s's consumer does not read a session queue:\n%s", dev, text)
		}
	}

	// `kubectl mirrord queues` shows the registry's live splits.
	f.Eventually(ctx, time.Minute, "queues shows both sessions' splits", func(ctx context.Context) error {
		out, err := f.RunPlugin(ctx, p, "-n", ns, "queues")
		if err != nil || !regexp.MustCompile(`worker-queues\s+worker\s+Deployment\s+2\s`).MatchString(out) {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		return nil
	})

	want := map[string]string{} // body → who must consume it
	for i := range 30 {
		dev := []string{"alice", "bob", "carol"}[i%3]
		body := fmt.Sprintf("m%02d-%s", i, dev)
		sendWithDeveloper(ctx, t, f, orders, body, dev)
		want[body] = dev
	}
	got := tally(ctx, t, f, doneURL, len(want))
	for body, dev := range want {
		by := got[body]
		switch {
		case by == "":
			t.Errorf("%s was never consumed", body)
		case dev == "carol" && !strings.HasPrefix(by, "deployed-"):
			t.Errorf("%s (no session's) was consumed by %s, want a deployed consumer", body, by)
		case dev != "carol" && by != dev:
			t.Errorf("%s was consumed by %s, want %s", body, by, dev)
		}
	}
	byWho := map[string]int{}
	for _, by := range got {
		byWho[by]++
	}
	t.Logf("consumed by: %v", byWho)
	for dev, out := range map[string]*framework.SyncBuffer{"alice": aliceOut, "bob": bobOut} {
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.Contains(line, "names this session's queue") {
				t.Logf("%s's exec: %s", dev, line)
			}
		}
	}
	if t.Failed() {
		t.Logf("alice's exec:\n%s\nbob's exec:\n%s", aliceOut.String(), bobOut.String())
	}

	// Both sessions end: the consumers are restored and the split's queues drained and gone.
	for _, cmd := range []*exec.Cmd{aliceCmd, bobCmd} {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
	}
	restoredAndClean(ctx, t, f, ns, queue, workloads)
	for i := range 6 {
		body := fmt.Sprintf("after%02d", i)
		sendWithDeveloper(ctx, t, f, orders, body, "alice")
	}
	for body, by := range tally(ctx, t, f, doneURL, 6) {
		if !strings.HasPrefix(by, "deployed-") {
			t.Errorf("after the sessions, %s was consumed by %s, want a deployed consumer", body, by)
		}
	}

	// Under fire: messages keep coming while a member's controller is killed -9, then the
	// CLI: nothing is lost (a message a killed party held comes back and is moved again, so
	// one may be consumed twice: SQS's at-least-once), and once the session expires the
	// consumers are restored and nothing of the split is left.
	aliceCmd, aliceOut = start("alice")
	if _, err := aliceOut.WaitFor(ctx, "consuming ", 4*time.Minute); err != nil {
		t.Fatalf("alice's consumer never started again: %v", err)
	}
	sent := map[string]bool{}
	for i := range 40 {
		dev := []string{"alice", "carol"}[i%2]
		body := fmt.Sprintf("fire%02d-%s", i, dev)
		sendWithDeveloper(ctx, t, f, orders, body, dev)
		sent[body] = true
		switch i {
		case 10:
			killController(ctx, t, workloads[len(workloads)-1])
		case 25:
			_ = aliceCmd.Process.Signal(syscall.SIGKILL)
			_ = aliceCmd.Wait()
		}
		time.Sleep(200 * time.Millisecond)
	}
	fired, twice := tallyTwice(ctx, t, f, doneURL, len(sent), true)
	for body := range sent {
		if fired[body] == "" {
			t.Errorf("%s was lost", body)
		}
	}
	t.Logf("under fire: %d messages, all consumed (%d twice)", len(sent), twice)
	restoredAndClean(ctx, t, f, ns, queue, workloads)
}

func sendWithDeveloper(ctx context.Context, t *testing.T, f *framework.Framework, queueURL, body, dev string) {
	t.Helper()
	_, err := f.SQS().SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(body),
		MessageAttributes: map[string]types.MessageAttributeValue{"developer": {DataType: aws.String("String"), StringValue: aws.String(dev)}}})
	if err != nil {
		t.Fatal(err)
	}
}

// tally reads the consumers' records ("BODY by WHO") from queue done until it has n, and
// returns who consumed each body; a body consumed twice fails the test.
func tally(ctx context.Context, t *testing.T, f *framework.Framework, done string, n int) map[string]string {
	got, _ := tallyTwice(ctx, t, f, done, n, false)
	return got
}

// tallyTwice is tally that, with allowTwice, counts bodies consumed twice instead of failing.
func tallyTwice(ctx context.Context, t *testing.T, f *framework.Framework, done string, n int, allowTwice bool) (map[string]string, int) {
	t.Helper()
	got := map[string]string{}
	twice := 0
	f.Eventually(ctx, 3*time.Minute, fmt.Sprintf("%d messages consumed", n), func(ctx context.Context) error {
		out, err := f.SQS().ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(done), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			return err
		}
		for _, m := range out.Messages {
			body, by, _ := strings.Cut(aws.ToString(m.Body), " by ")
			if prev, seen := got[body]; seen {
				if !allowTwice {
					t.Errorf("%s consumed twice: by %s and by %s", body, prev, by)
				}
				twice++
			}
			got[body] = by
			_, _ = f.SQS().DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(done), ReceiptHandle: m.ReceiptHandle})
		}
		if len(got) < n {
			return fmt.Errorf("%d of %d", len(got), n)
		}
		return nil
	})
	return got, twice
}

// restoredAndClean waits until every Workload cluster's consumer reads queue again, its split
// record gone, and no queue of the split is left.
func restoredAndClean(ctx context.Context, t *testing.T, f *framework.Framework, ns, queue string, workloads []*framework.Cluster) {
	t.Helper()
	f.Eventually(ctx, 3*time.Minute, "the consumers read their queue again and no split queue is left", func(ctx context.Context) error {
		for _, c := range workloads {
			d, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, "worker", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if v := d.Spec.Template.Spec.Containers[0].Env[0]; v.Name != "QUEUE" || v.Value != queue {
				return fmt.Errorf("%s: the consumer's %s is %q", c.Name, v.Name, v.Value)
			}
			if _, split := d.Annotations[mirrordv1alpha1.GroupName+"/queue-split"]; split {
				return fmt.Errorf("%s: the consumer is still marked split", c.Name)
			}
			if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != d.Status.Replicas || d.Status.AvailableReplicas != d.Status.Replicas {
				return fmt.Errorf("%s: the consumer is rolling back", c.Name)
			}
		}
		left, err := f.SQS().ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(queuesplit.QueuePrefix)})
		if err != nil {
			return err
		}
		for _, u := range left.QueueUrls {
			tags, err := f.SQS().ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(u)})
			if err == nil && tags.Tags[queuesplit.TagSplit] == ns+"/worker-queues" {
				return fmt.Errorf("queue %s is left", u)
			}
		}
		return nil
	})
}
