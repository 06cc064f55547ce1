package httpfilter

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

type (
	filter = mirrordv1alpha1.HTTPFilter
	term   = mirrordv1alpha1.HTTPFilterTerm
	body   = mirrordv1alpha1.JSONBodyFilter
)

func request(t testing.TB, raw string) *Request {
	t.Helper()
	r, err := readRequest(raw)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return r
}

// readRequest parses raw, and reads its body as the steal does for a body filter.
func readRequest(raw string) (*Request, error) {
	head, rest, _ := strings.Cut(raw, "\r\n\r\n")
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head + "\r\n\r\n")))
	if err != nil {
		return nil, err
	}
	out := &Request{Request: r}
	if len(rest) <= MaxBody {
		out.Body = []byte(rest)
	}
	return out, nil
}

const (
	get      = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	books    = `{"library": {"books": [34555, 1233, 234, "x"]}}`
	numbers  = `{"books": [1111, 2222, 4444]}`
	strnums  = `{"books": ["1111", "2222", "4444"]}`
	postJSON = "POST /buildings HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\r\n"
)

func TestMatch(t *testing.T) {
	for name, tc := range map[string]struct {
		f     filter
		req   string
		match bool
	}{
		"header":                 {f: filter{Header: "^X-User: alice$"}, req: "GET / HTTP/1.1\r\nHost: a\r\nX-User: alice\r\n\r\n", match: true},
		"header, other value":    {f: filter{Header: "^X-User: alice$"}, req: "GET / HTTP/1.1\r\nHost: a\r\nX-User: bob\r\n\r\n", match: false},
		"header ignores case":    {f: filter{Header: "^x-user: ALICE$"}, req: "GET / HTTP/1.1\r\nHost: a\r\nX-User: alice\r\n\r\n", match: true},
		"host is a header line":  {f: filter{Header: "^Host: shop"}, req: "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n", match: true},
		"path":                   {f: filter{Path: "^/api/v2/"}, req: "GET /api/v2/items?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", match: true},
		"path ignores case":      {f: filter{Path: "^/API/"}, req: "GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n", match: true},
		"path with query":        {f: filter{Path: `\?user=me$`}, req: "GET /x?user=me HTTP/1.1\r\nHost: a\r\n\r\n", match: true},
		"path without its query": {f: filter{Path: "^/x$"}, req: "GET /x?user=me HTTP/1.1\r\nHost: a\r\n\r\n", match: true},
		"path and method":        {f: filter{Path: "^/api/v2/", Method: "POST"}, req: "GET /api/v2/items HTTP/1.1\r\nHost: a\r\n\r\n", match: false},
		"method name, any case":  {f: filter{Method: "post"}, req: "POST / HTTP/1.1\r\nHost: a\r\n\r\n", match: true},
		"method is whole":        {f: filter{Method: "GET"}, req: "GETX / HTTP/1.1\r\nHost: a\r\n\r\n", match: false},
		"methods":                {f: filter{Method: "GET|POST"}, req: "POST / HTTP/1.1\r\nHost: a\r\n\r\n", match: true},
		// A policy's required header narrows what a permissive filter takes: `.*` matches the
		// Host line of every request, the policy's pattern only requests that carry X-User.
		"required header missing": {f: filter{Header: "X-User: a|.*", RequiredHeaders: []string{"^X-User: .+"}}, req: get, match: false},
		"required header present": {f: filter{Header: "X-User: a|.*", RequiredHeaders: []string{"^X-User: .+"}}, req: "GET / HTTP/1.1\r\nHost: a\r\nX-User: b\r\n\r\n", match: true},
		"permissive alone":        {f: filter{Header: "X-User: a|.*"}, req: get, match: true},
		"required, one of two":    {f: filter{RequiredHeaders: []string{"^X-User: .+", "^X-Env: dev$"}}, req: "GET / HTTP/1.1\r\nHost: a\r\nX-User: b\r\n\r\n", match: false},
		"required, both":          {f: filter{RequiredHeaders: []string{"^X-User: .+", "^X-Env: dev$"}}, req: "GET / HTTP/1.1\r\nHost: a\r\nX-User: b\r\nX-Env: dev\r\n\r\n", match: true},
		"required beside anyOf":   {f: filter{AnyOf: []term{{Path: "/"}}, RequiredHeaders: []string{"^X-User: .+"}}, req: get, match: false},
		// mirrord users' look-ahead: every request but the kubelet's probes.
		"not a probe":            {f: filter{Header: "^User-Agent: (?!kube-probe)"}, req: "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8.0\r\n\r\n", match: true},
		"a probe":                {f: filter{Header: "^User-Agent: (?!kube-probe)"}, req: "GET /healthz HTTP/1.1\r\nHost: a\r\nUser-Agent: kube-probe/1.30\r\n\r\n", match: false},
		"negative path":          {f: filter{Path: "^/api/(?!internal/)"}, req: "GET /api/internal/x HTTP/1.1\r\nHost: a\r\n\r\n", match: false},
		"allOf, all":             {f: filter{AllOf: []term{{Header: "^baggage: .*mirrord-session=k"}, {Path: "^/api/my$"}, {Method: "POST"}}}, req: "POST /api/my HTTP/1.1\r\nHost: a\r\nBaggage: mirrord-session=k\r\n\r\n", match: true},
		"allOf, one fails":       {f: filter{AllOf: []term{{Header: "^baggage: .*mirrord-session=k"}, {Path: "^/api/my$"}, {Method: "POST"}}}, req: "GET /api/my HTTP/1.1\r\nHost: a\r\nBaggage: mirrord-session=k\r\n\r\n", match: false},
		"allOf, two headers":     {f: filter{AllOf: []term{{Header: "^X-A: 1$"}, {Header: "^X-B: 2$"}}}, req: "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n", match: false},
		"anyOf, the path":        {f: filter{AnyOf: []term{{Header: "^baggage: .*mirrord-session=k"}, {Path: "^/api/my$"}}}, req: "GET /api/my HTTP/1.1\r\nHost: a\r\n\r\n", match: true},
		"anyOf, the header":      {f: filter{AnyOf: []term{{Header: "^baggage: .*mirrord-session=k"}, {Path: "^/api/my$"}}}, req: "GET /x HTTP/1.1\r\nHost: a\r\nBaggage: mirrord-session=k\r\n\r\n", match: true},
		"anyOf, neither":         {f: filter{AnyOf: []term{{Header: "^baggage: .*mirrord-session=k"}, {Path: "^/api/my$"}}}, req: "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", match: false},
		"anyOf with a top field": {f: filter{Method: "POST", AnyOf: []term{{Path: "^/a$"}, {Path: "^/b$"}}}, req: "GET /a HTTP/1.1\r\nHost: a\r\n\r\n", match: false},
		// mirrord's body filter examples.
		"body":                {f: filter{Body: &body{Query: "$.library.books[*]", Matches: `^\d{3,5}$`}}, req: postJSON + books, match: true},
		"body, no value":      {f: filter{Body: &body{Query: "$.library.books[*]", Matches: `^\d{6}$`}}, req: postJSON + books, match: false},
		"typeof numbers":      {f: filter{Body: &body{Query: "$.books[?(typeof(@) == 'number')]", Matches: "4$"}}, req: postJSON + numbers, match: true},
		"typeof strings":      {f: filter{Body: &body{Query: "$.books[?(typeof(@) == 'number')]", Matches: "4$"}}, req: postJSON + strnums, match: false},
		"body an object":      {f: filter{Body: &body{Query: "$.library", Matches: `"books":\[34555`}}, req: postJSON + books, match: true},
		"body not JSON":       {f: filter{Body: &body{Query: "$.a", Matches: "."}}, req: postJSON + "a=1", match: false},
		"no body":             {f: filter{Body: &body{Query: "$.a", Matches: "."}}, req: get, match: false},
		"body too long":       {f: filter{Body: &body{Query: "$.a", Matches: "."}}, req: postJSON + `{"a": "x", "pad": "` + strings.Repeat("p", MaxBody) + `"}`, match: false},
		"allOf path and body": {f: filter{AllOf: []term{{Path: "/buildings"}, {Body: &body{Query: "$.library.books[*]", Matches: `^\d{3,5}$`}}}}, req: postJSON + books, match: true},
		"anyOf body":          {f: filter{AnyOf: []term{{Path: "^/nothing$"}, {Body: &body{Query: "$.user", Matches: "^me$"}}}}, req: postJSON + `{"user": "me"}`, match: true},
		// jq over each "Name: value" line.
		"jq":          {f: filter{HeaderJQ: `startswith("X-User: al")`}, req: "GET / HTTP/1.1\r\nHost: a\r\nX-User: alice\r\n\r\n", match: true},
		"jq false":    {f: filter{HeaderJQ: `startswith("X-User: bo")`}, req: "GET / HTTP/1.1\r\nHost: a\r\nX-User: alice\r\n\r\n", match: false},
		"jq not bool": {f: filter{HeaderJQ: `.`}, req: get, match: false},
		"jq an error": {f: filter{HeaderJQ: `error("x")`}, req: get, match: false},
		"jq no env":   {f: filter{HeaderJQ: `$ENV | length > 0`}, req: get, match: false},
		"jq runs out": {f: filter{HeaderJQ: `[range(1e12)] | length > 0`}, req: get, match: false},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := Compile(&tc.f)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if got := f.Match(request(t, tc.req)); got != tc.match {
				t.Errorf("%+v: match %v, want %v", tc.f, got, tc.match)
			}
			if d := time.Since(start); d > 20*JQTimeout {
				t.Errorf("a match took %v", d)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		f       filter
		wantErr string
	}{
		"required header":  {f: filter{RequiredHeaders: []string{"("}}, wantErr: `httpFilter.requiredHeaders[0]: "(": not a valid regular expression`},
		"header":           {f: filter{Header: "(unclosed"}, wantErr: `feature.network.incoming.httpFilter.header: "(unclosed": not a valid regular expression`},
		"method":           {f: filter{Method: "*GET"}, wantErr: `httpFilter.method: "*GET": not a valid regular expression`},
		"allOf path":       {f: filter{AllOf: []term{{Path: "/"}, {Path: "("}}}, wantErr: `httpFilter.allOf[1].path: "(": not a valid regular expression`},
		"anyOf two fields": {f: filter{AnyOf: []term{{Path: "/", Method: "GET"}}}, wantErr: "httpFilter.anyOf[0]: each term sets exactly one"},
		"body query":       {f: filter{Body: &body{Query: "library.books", Matches: "."}}, wantErr: `httpFilter.body.query: "library.books": not a valid JSONPath (RFC 9535) query`},
		"typeof args":      {f: filter{Body: &body{Query: "$[?typeof(@, @) == 'x']", Matches: "."}}, wantErr: "httpFilter.body.query"},
		"body matches":     {f: filter{AnyOf: []term{{Body: &body{Query: "$.a", Matches: "("}}}}, wantErr: `httpFilter.anyOf[0].body.matches: "(": not a valid regular expression`},
		"jq":               {f: filter{HeaderJQ: "startswith("}, wantErr: `httpFilter.headerJQ: "startswith(": not a valid jq program`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Compile(&tc.f)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	if f, err := Compile(&filter{}); f != nil || err != nil {
		t.Errorf("empty filter: %v %v, want whole-port steal", f, err)
	}
	if f, err := Compile(nil); f != nil || err != nil {
		t.Errorf("nil filter: %v %v, want whole-port steal", f, err)
	}
	if f, _ := Compile(&filter{AllOf: []term{{Path: "/"}, {Body: &body{Query: "$", Matches: "."}}}}); !f.NeedsBody {
		t.Error("a body term in allOf: NeedsBody is false")
	}
	if f, _ := Compile(&filter{Path: "/"}); f.NeedsBody {
		t.Error("a path filter needs no body")
	}
}

// TestMatchBudget: a request of many header lines, each taking a backtracking regex near its
// own bound, is no match once MatchBudget is spent, not after every line.
func TestMatchBudget(t *testing.T) {
	// Catastrophic backtracking on every line: (a+)+ over a's that end in b, with a look-ahead
	// so it runs on regexp2.
	f, err := Compile(&filter{Header: "^X-(?=P)P: (a+)+c"})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	for i := range 200 {
		fmt.Fprintf(&b, "X-P: %sb%d\r\n", strings.Repeat("a", 40), i)
	}
	b.WriteString("\r\n")
	r := request(t, b.String())
	start := time.Now()
	if f.Match(r) {
		t.Fatal("matched")
	}
	if took := time.Since(start); took > MatchBudget+500*time.Millisecond {
		t.Errorf("a match took %v, want about MatchBudget (%v)", took, MatchBudget)
	}
}

// FuzzFilter: no filter or request crashes compiling or matching.
func FuzzFilter(f *testing.F) {
	f.Add("^X-User: alice$", "^/api/", "GET|POST", "$.a[*]", "^1", `startswith("X")`, "GET /api/x HTTP/1.1\r\nHost: a\r\nX-User: alice\r\n\r\n")
	f.Add("(", "", "", "$[?typeof(@) == 'number']", "4$", "", "POST / HTTP/1.0\r\n\r\n[1, 2, 4]")
	f.Fuzz(func(t *testing.T, header, path, method, query, matches, jq, raw string) {
		hf := &filter{Header: header, Path: path, Method: method}
		if jq != "" {
			hf.AnyOf = []term{{HeaderJQ: jq}, {Path: path}}
		}
		if query != "" {
			hf.AllOf = []term{{Body: &body{Query: query, Matches: matches}}}
		}
		filter, err := Compile(hf)
		if err != nil || filter == nil {
			return
		}
		req, err := readRequest(raw)
		if err != nil {
			return
		}
		_ = filter.Match(req)
	})
}
