// Command echo is the sample app of the rig and the e2e tests, and their in-pod probe.
//
//	echo serve [-addr :8080] [-log] HTTP server answering every request with a JSON
//	                                description of itself and the request; /bytes/N answers
//	                                N bytes (for throughput)
//	echo get [-retry-for D] [-discard] [-H "Name: value"] URL
//	                                GET URL (DNS through the pod's resolver), print the body
//	                                (-discard: print "bytes N seconds S" instead); retry
//	                                failed connections for up to D (a Service's rules reach
//	                                kube-proxy a moment after its pods are ready)
//	echo namespaces -kubeconfig F   list the namespaces of the cluster F points at
//	echo consume [-queue-var QUEUE]  an SQS consumer: read the queue $QUEUE names (at
//	                                $SQS_ENDPOINT), print "consumed BODY [ATTRS] by HOST"
//	                                for each message and delete it
//	echo flood -conns N [-for D] ADDR...
//	                                hold N silent TCP connections to each ADDR for D,
//	                                opening a new one whenever the peer closes one; print
//	                                the connections made and refused every 5 s
//
// The probe subcommands exist because busybox wget cannot speak TLS to Go servers.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Reply is what serve answers with.
type Reply struct {
	Pod     string              `json:"pod"`
	Cluster string              `json:"cluster,omitempty"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: echo serve|get|namespaces ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	case "namespaces":
		err = namespaces(os.Args[2:])
	case "flood":
		err = flood(os.Args[2:])
	case "consume":
		err = consume(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q: use serve, get, namespaces, consume or flood", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", ":8080", "listen address")
	logRequests := fs.Bool("log", false, "print a line for every request")
	_ = fs.Parse(args)
	host, _ := os.Hostname()
	http.HandleFunc("/bytes/", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/bytes/"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "want /bytes/N", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 256<<10)
		for n > 0 {
			k, err := w.Write(buf[:min(n, int64(len(buf)))])
			if err != nil {
				return
			}
			n -= int64(k)
		}
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if *logRequests {
			fmt.Printf("%s got %s %s from %s\n", host, r.Method, r.URL.Path, r.RemoteAddr)
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Reply{
			Pod: host, Cluster: os.Getenv("CLUSTER_NAME"), Method: r.Method, Path: r.URL.Path,
			Headers: r.Header, Body: string(body),
		})
	})
	return http.ListenAndServe(*addr, nil)
}

func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	retryFor := fs.Duration("retry-for", 0, "retry failed connections for this long")
	discard := fs.Bool("discard", false, `print "bytes N seconds S" instead of the body`)
	header := fs.String("H", "", `a request header, "Name: value"`)
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: echo get [-retry-for D] URL")
	}
	url := fs.Arg(0)
	client := &http.Client{Timeout: 5 * time.Minute}
	start := time.Now()
	deadline := time.Now().Add(*retryFor)
	do := func() (*http.Response, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		if k, v, ok := strings.Cut(*header, ":"); ok {
			req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		return client.Do(req)
	}
	resp, err := do()
	for err != nil && time.Now().Before(deadline) {
		fmt.Fprintln(os.Stderr, "retrying:", err)
		time.Sleep(250 * time.Millisecond)
		resp, err = do()
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if *discard {
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			return err
		}
		fmt.Printf("bytes %d seconds %f\n", n, time.Since(start).Seconds())
	} else if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func namespaces(args []string) error {
	fs := flag.NewFlagSet("namespaces", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster to list")
	_ = fs.Parse(args)
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	names := make([]string, 0, len(list.Items))
	for _, ns := range list.Items {
		names = append(names, ns.Name)
	}
	sort.Strings(names)
	fmt.Println(strings.Join(names, "\n"))
	return nil
}

// flood holds silent connections to each address: an unauthenticated peer's flood of
// handshakes at a relay or an agent, or of connections that never send a byte to a mirrored
// port (the bench's abuse run).
func flood(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	conns := fs.Int("conns", 1000, "silent connections to hold to each address")
	dur := fs.Duration("for", time.Hour, "how long")
	_ = fs.Parse(args)
	if fs.NArg() == 0 {
		return fmt.Errorf("flood: name at least one address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var made, failed atomic.Int64
	for _, addr := range fs.Args() {
		for range *conns {
			go func() {
				for ctx.Err() == nil {
					var d net.Dialer
					c, err := d.DialContext(ctx, "tcp", addr)
					if err != nil {
						failed.Add(1)
						time.Sleep(100 * time.Millisecond)
						continue
					}
					made.Add(1)
					// Silent until the peer closes it (or the flood ends).
					go func() { <-ctx.Done(); c.Close() }()
					_, _ = io.Copy(io.Discard, c)
					c.Close()
					time.Sleep(time.Second) // a steady flood, not a busy loop
				}
			}()
		}
	}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			fmt.Printf("flood: %d connections made, %d refused\n", made.Load(), failed.Load())
		}
	}
}
