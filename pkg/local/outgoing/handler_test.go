package outgoing

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// TestDNSFilterSendsUnlistedNamesLocally: with a remote-list DNS filter, a name it does not
// list is asked of this machine's nameserver (here one on loopback), never of the session
// (Remote is nil: using it would panic).
func TestDNSFilterSendsUnlistedNamesLocally(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	asked := make(chan string, 1)
	go func() {
		buf := make([]byte, 512)
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		if _, err := p.Start(buf[:n]); err == nil {
			if q, err := p.Question(); err == nil {
				asked <- q.Name.String()
			}
		}
		_, _ = pc.WriteTo(servfail(buf[:n]), addr)
	}()
	filter, err := ParseFilter([]string{"backend"}, true)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{DNS: true, DNSFilter: filter, Search: []string{"shop.svc.cluster.local"}, LocalResolver: pc.LocalAddr().String()}
	q := query(t, "api.shop.svc.cluster.local.")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.resolve(ctx, q); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-asked:
		if name != "api.shop.svc.cluster.local." {
			t.Errorf("the local nameserver was asked %q", name)
		}
	case <-ctx.Done():
		t.Fatal("the local nameserver was not asked")
	}
}

func query(t *testing.T, name string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
