package member

import (
	"context"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

func TestAgentKey(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	k1, err := LoadAgentKey(ctx, kube, "mirrord-system")
	if err != nil || len(k1) != 32 {
		t.Fatalf("first load: %d bytes, %v", len(k1), err)
	}
	k2, err := LoadAgentKey(ctx, kube, "mirrord-system")
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("second load returned another key (%v)", err)
	}
	a, b := AgentToken(k1, "job-a"), AgentToken(k1, "job-b")
	if a == b || len(a) != 64 || AgentToken(k1, "job-a") != a {
		t.Errorf("tokens: %q %q", a, b)
	}
	if AgentToken([]byte("another key, also 32 bytes long!"), "job-a") == a {
		t.Error("the token does not depend on the key")
	}
}
