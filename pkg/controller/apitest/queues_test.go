package apitest

import (
	"bytes"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/queues"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
)

// TestQueueRegistries: an admin's MirrordWorkloadQueueRegistry (mirrord's fields) is checked by
// the API server (a name source is one variable or one pattern; SQS only; a bounded restart
// timeout); a developer reads the registries of their namespace with `kubectl mirrord queues`
// and cannot write them.
func TestQueueRegistries(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	grantUsers(t, s)
	ctx := t.Context()
	registry := func(mutate func(*mirrordv1alpha1.MirrordWorkloadQueueRegistry)) *mirrordv1alpha1.MirrordWorkloadQueueRegistry {
		r := &mirrordv1alpha1.MirrordWorkloadQueueRegistry{ObjectMeta: metav1.ObjectMeta{Name: "orders-consumer"},
			Spec: mirrordv1alpha1.MirrordWorkloadQueueRegistrySpec{
				Consumer: mirrordv1alpha1.QueueConsumer{Name: "orders", WorkloadType: mirrordv1alpha1.QueueConsumerDeployment},
				Queues: map[string]mirrordv1alpha1.SplitQueue{"orders": {QueueType: mirrordv1alpha1.QueueTypeSQS,
					NameSource: mirrordv1alpha1.QueueNameSource{EnvVar: "ORDERS_QUEUE"}, FallbackName: "orders", Tags: map[string]string{"team": "shop"}}},
				SQS: &mirrordv1alpha1.SQSAccess{Region: "eu-west-1", Endpoint: "http://sqs.local:4566", CredentialsSecret: "sqs"},
			}}
		if mutate != nil {
			mutate(r)
		}
		return r
	}
	for name, tc := range map[string]struct {
		mutate func(*mirrordv1alpha1.MirrordWorkloadQueueRegistry)
		want   string
	}{
		"both a variable and a pattern": {mutate: func(r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) {
			q := r.Spec.Queues["orders"]
			q.NameSource.RegexPattern = "^ORDERS_.*"
			r.Spec.Queues["orders"] = q
		}, want: "set exactly one of envVar or regexPattern"},
		"Kafka": {mutate: func(r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) {
			q := r.Spec.Queues["orders"]
			q.QueueType = "Kafka"
			r.Spec.Queues["orders"] = q
		}, want: "Unsupported value: \"Kafka\""},
		"no queues": {mutate: func(r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) { r.Spec.Queues = nil }, want: "spec.queues"},
		"a day to restart": {mutate: func(r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) {
			r.Spec.WorkloadRestartTimeout = ptr.To[int32](86400)
		}, want: "spec.workloadRestartTimeout"},
		"an endpoint that is no URL": {mutate: func(r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) { r.Spec.SQS.Endpoint = "sqs.local" }, want: "spec.sqs.endpoint"},
	} {
		if _, err := s.Mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries("hc").Create(ctx, registry(tc.mutate), metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries("hc").Create(ctx, registry(nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// alice reads hc's registries with the command, as herself.
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace, flags.Impersonate = ptr.To(s.Kubeconfig), ptr.To("hc"), ptr.To(alice)
	var out, errOut bytes.Buffer
	cmd := queues.NewCmdQueues(flags, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(nil)
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("kubectl mirrord queues as alice: %v\n%s", err, errOut.String())
	}
	if got := out.String(); !strings.Contains(got, "CONSUMER") || !strings.Contains(got, "orders-consumer") || !strings.Contains(got, "Deployment") {
		t.Errorf("kubectl mirrord queues:\n%s", got)
	}
	asAlice, err := versioned.NewForConfig(s.Impersonate(alice))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asAlice.MirrordV1alpha1().MirrordWorkloadQueueRegistries("hc").Create(ctx, registry(func(r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) { r.Name = "mine" }), metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("alice creating a registry: %v, want forbidden (admins declare consumers)", err)
	}
}
