package framework

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// EchoApp deploys the sample HTTP app (port 8080) with a Service of the same name in ns
// and waits until the Service has a ready endpoint.
func (f *Framework) EchoApp(ctx context.Context, c *Cluster, ns, name string, replicas int32) {
	f.t.Helper()
	labels := map[string]string{"app": name}
	_, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: f.SampleImage, ImagePullPolicy: corev1.PullNever,
					Args:  []string{"serve", "-addr", ":8080"},
					Env:   []corev1.EnvVar{{Name: "CLUSTER_NAME", Value: c.Name}},
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{
						ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
						PeriodSeconds: 1,
					},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatalf("%s: create deployment %s: %v", c.Name, name, err)
	}
	_, err = c.Kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{
			{Name: "http", Port: 8080, TargetPort: intstr.FromString("http")},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatalf("%s: create service %s: %v", c.Name, name, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == replicas, nil
	})
	if err != nil {
		f.t.Fatalf("%s: deployment %s/%s not ready: %v", c.Name, ns, name, err)
	}
}

// NginxApp deploys Debian's nginx (port 80, probed over HTTP by the kubelet) with a Service
// of the same name in ns, its environment set from env and from Secret secret's keys (each
// key a variable), and waits until it is ready.
func (f *Framework) NginxApp(ctx context.Context, c *Cluster, ns, name string, env map[string]string, secret map[string]string) {
	f.t.Helper()
	if _, err := c.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: secret}, metav1.CreateOptions{}); err != nil {
		f.t.Fatalf("%s: create secret %s: %v", c.Name, name, err)
	}
	var vars []corev1.EnvVar
	for k, v := range env {
		vars = append(vars, corev1.EnvVar{Name: k, Value: v})
	}
	for k := range secret {
		vars = append(vars, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: k}}})
	}
	f.serveApp(ctx, c, ns, name, corev1.PodSpec{Containers: []corev1.Container{{
		Name: "nginx", Image: f.NginxImage, ImagePullPolicy: corev1.PullNever,
		Env:   vars,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(80)}},
			PeriodSeconds: 1,
		},
	}}})
}

// PostgresApp deploys Debian's PostgreSQL 15 (port 5432, user postgres without a password)
// with a Service of the same name in ns and the given environment, and waits until it is
// ready.
func (f *Framework) PostgresApp(ctx context.Context, c *Cluster, ns, name string, env map[string]string) {
	f.t.Helper()
	var vars []corev1.EnvVar
	for k, v := range env {
		vars = append(vars, corev1.EnvVar{Name: k, Value: v})
	}
	f.serveApp(ctx, c, ns, name, corev1.PodSpec{
		// The image's data directory belongs to its postgres user.
		SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](999), RunAsGroup: ptr.To[int64](999)},
		Containers: []corev1.Container{{
			Name: "postgres", Image: f.PostgresImage, ImagePullPolicy: corev1.PullNever,
			Env:   vars,
			Ports: []corev1.ContainerPort{{Name: "postgres", ContainerPort: 5432}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(5432)}},
				PeriodSeconds: 1,
			},
		}},
	})
}

// MariaDBApp deploys Debian's MariaDB as Deployment and Service name in c/ns: user app
// (password app-secret) may do anything, from any address.
func (f *Framework) MariaDBApp(ctx context.Context, c *Cluster, ns, name string) {
	f.t.Helper()
	f.serveApp(ctx, c, ns, name, corev1.PodSpec{
		// The image's data directory belongs to its mysql user.
		SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](999), RunAsGroup: ptr.To[int64](999)},
		Containers: []corev1.Container{{
			Name: "mariadb", Image: f.MariaDBImage, ImagePullPolicy: corev1.PullNever,
			Ports: []corev1.ContainerPort{{Name: "mysql", ContainerPort: 3306}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(3306)}},
				PeriodSeconds: 1,
			},
		}},
	})
}

// serveApp deploys one replica of spec as Deployment name, with a Service of the same name
// for its first container's first port if it has one, and waits until it is ready.
func (f *Framework) serveApp(ctx context.Context, c *Cluster, ns, name string, spec corev1.PodSpec) {
	f.t.Helper()
	labels := map[string]string{"app": name}
	_, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatalf("%s: create deployment %s: %v", c.Name, name, err)
	}
	if ports := spec.Containers[0].Ports; len(ports) > 0 {
		port := ports[0]
		if _, err := c.Kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: port.Name, Port: port.ContainerPort, TargetPort: intstr.FromString(port.Name)}}},
		}, metav1.CreateOptions{}); err != nil {
			f.t.Fatalf("%s: create service %s: %v", c.Name, name, err)
		}
	}
	if out, err := f.Kubectl(c, "-n", ns, "rollout", "status", "deploy/"+name, "--timeout=90s"); err != nil {
		f.t.Fatalf("%s: deployment %s/%s not ready: %v: %s", c.Name, ns, name, err, out)
	}
}

// RunToCompletion runs a pod with the given container until it ends and returns its log.
// The test fails if the pod does not succeed.
func (f *Framework) RunToCompletion(ctx context.Context, c *Cluster, ns string, pod *corev1.Pod) string {
	f.t.Helper()
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	created, err := c.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatalf("%s: create pod: %v", c.Name, err)
	}
	var phase corev1.PodPhase
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.Kube.CoreV1().Pods(ns).Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	})
	logs, _ := c.Kube.CoreV1().Pods(ns).GetLogs(created.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || phase != corev1.PodSucceeded {
		f.t.Fatalf("%s: pod %s/%s ended %q (%v); log:\n%s", c.Name, ns, created.Name, phase, err, logs)
	}
	return string(logs)
}

// WaitForJob waits until a Job completes; the test fails if it fails or times out.
func (f *Framework) WaitForJob(ctx context.Context, c *Cluster, ns, name string) {
	f.t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		j, err := c.Kube.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range j.Status.Conditions {
			if cond.Status != corev1.ConditionTrue {
				continue
			}
			switch cond.Type {
			case batchv1.JobComplete:
				return true, nil
			case batchv1.JobFailed:
				return false, fmt.Errorf("job failed: %s: %s", cond.Reason, cond.Message)
			}
		}
		last = fmt.Sprintf("active %d, succeeded %d, failed %d", j.Status.Active, j.Status.Succeeded, j.Status.Failed)
		return false, nil
	})
	if err != nil {
		f.t.Fatalf("%s: job %s/%s did not complete (%s): %v", c.Name, ns, name, last, err)
	}
}
