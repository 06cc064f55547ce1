// Package httpmatrix is the HTTP/1.1 exchanges every hop that parses HTTP must pass on
// unchanged (Expect both ways, 1xx, upgrades, chunked bodies with trailers, HEAD/204/304,
// Connection: close, pipelining, large headers, slow clients), and the server that answers
// them: the steal's, mirror's and proxy mode's tests run them through their hop.
package httpmatrix

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Handler serves every case of the HTTP matrix, each answer naming who gives it: the
// target in its pod, or the session's local server.
func Handler(who string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d %d", who, r.Method, len(b), len(r.Header.Get("X-Big")))
	})
	// Like nginx's `return 200`: the answer without reading the body.
	mux.HandleFunc("/at-once", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintf(w, "%s at once", who)
	})
	mux.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		fmt.Fprintf(w, "%s hinted", who)
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(brw, "%s:%s", who, line)
			_ = brw.Flush()
		}
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		fmt.Fprintf(w, "%s %s", who, b)
		w.Header().Set("X-Sum", fmt.Sprintf("%s-%d-%s", who, len(b), r.Trailer.Get("X-Req-Sum")))
	})
	// An answer with neither Date nor Content-Type (net/http adds both unless told not to).
	mux.HandleFunc("/bare", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"], w.Header()["Content-Type"] = nil, nil
		fmt.Fprintf(w, "%s bare", who)
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.WriteHeader(code)
	})
	return mux
}

// Case is one HTTP exchange on a fresh connection; it fails t unless the answer is
// who's and means what it meant without a session.
type Case struct {
	Name string
	Run  func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string)
	// Bodyless: the client never sends the body it announced (the server answered first),
	// so there is no whole request to mirror.
	Bodyless bool
}

// readAnswer reads the answers to one request: the 1xx codes before the final one, and the
// final one with its body read.
func ReadAnswer(t *testing.T, br *bufio.Reader, method string) (interim []int, resp *http.Response, body string) {
	t.Helper()
	for {
		r, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("reading the answer: %v (after 1xx %v)", err, interim)
		}
		if r.StatusCode >= 100 && r.StatusCode < 200 && r.StatusCode != http.StatusSwitchingProtocols {
			interim = append(interim, r.StatusCode)
			if r.StatusCode == http.StatusEarlyHints && r.Header.Get("Link") == "" {
				t.Errorf("103 without its Link header: %v", r.Header)
			}
			continue
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatalf("reading the body: %v", err)
		}
		return interim, r, string(b)
	}
}

func Want(t *testing.T, what, got, wanted string) {
	t.Helper()
	if got != wanted {
		t.Errorf("%s = %q, want %q", what, got, wanted)
	}
}

var Cases = []Case{
	{"Expect: 100-continue, the server reads the body", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", user)
		r, err := http.ReadResponse(br, nil)
		if err != nil || r.StatusCode != http.StatusContinue {
			t.Fatalf("before the body: %v %v, want 100 Continue", r, err)
		}
		io.WriteString(c, "hello")
		_, resp, body := ReadAnswer(t, br, "POST")
		Want(t, "answer", fmt.Sprint(resp.StatusCode, " ", body), "200 "+who+" POST 5 0")
	}, false},
	{"Expect: 100-continue, the server answers at once", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /at-once HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", user)
		interim, resp, body := ReadAnswer(t, br, "POST")
		Want(t, "answer", fmt.Sprint(interim, " ", resp.StatusCode, " ", body), "[] 200 "+who+" at once")
	}, true},
	{"Expect: 100-continue with the body sent at once (Python's http.client)", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello", user)
		interim, resp, body := ReadAnswer(t, br, "POST")
		Want(t, "answer", fmt.Sprint(interim, " ", resp.StatusCode, " ", body), "[100] 200 "+who+" POST 5 0")
	}, false},
	{"an answer without Date or Content-Type stays without", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "GET /bare HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", user)
		_, resp, body := ReadAnswer(t, br, "GET")
		Want(t, "answer", fmt.Sprint(body, " Date=", resp.Header["Date"], " Content-Type=", resp.Header["Content-Type"]), who+" bare Date=[] Content-Type=[]")
	}, false},
	{"103 Early Hints, then the answer", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "GET /hints HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", user)
		interim, resp, body := ReadAnswer(t, br, "GET")
		Want(t, "answer", fmt.Sprint(interim, " ", resp.StatusCode, " ", body), "[103] 200 "+who+" hinted")
	}, false},
	{"Upgrade: the connection becomes the server's", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "GET /upgrade HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", user)
		r, err := http.ReadResponse(br, nil)
		if err != nil || r.StatusCode != http.StatusSwitchingProtocols || r.Header.Get("Upgrade") != "echo" {
			t.Fatalf("upgrade answer: %v %v", r, err)
		}
		for _, msg := range []string{"ping\n", "pong\n"} {
			io.WriteString(c, msg)
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			Want(t, "upgraded echo", line, who+":"+msg)
		}
	}, false},
	{"a chunked body with trailers both ways", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /trailers HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nTransfer-Encoding: chunked\r\nTrailer: X-Req-Sum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Req-Sum: 11\r\n\r\n", user)
		_, resp, body := ReadAnswer(t, br, "POST")
		Want(t, "answer", body, who+" hello world")
		Want(t, "trailer", resp.Trailer.Get("X-Sum"), who+"-11-11")
	}, false},
	{"HEAD, 204 and 304 carry no body; the connection goes on", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "HEAD /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", user)
		_, resp, body := ReadAnswer(t, br, "HEAD")
		Want(t, "HEAD", fmt.Sprint(resp.StatusCode, " ", body), "200 ")
		for _, code := range []string{"204", "304"} {
			fmt.Fprintf(c, "GET /status/%s HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", code, user)
			_, resp, body := ReadAnswer(t, br, "GET")
			Want(t, code, fmt.Sprint(resp.StatusCode, " ", body), code+" ")
		}
		fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", user)
		_, _, body = ReadAnswer(t, br, "GET")
		Want(t, "after them", body, who+" GET 0 0")
	}, false},
	{"Connection: close ends the connection after the answer", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nConnection: close\r\n\r\n", user)
		_, resp, body := ReadAnswer(t, br, "GET")
		Want(t, "answer", fmt.Sprint(resp.Close, " ", body), "true "+who+" GET 0 0")
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("after the answer: %v, want the connection closed", err)
		}
	}, false},
	{"pipelined requests are answered in order", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: api\r\nX-User: %[1]s\r\nContent-Length: 3\r\n\r\nabcGET /echo HTTP/1.1\r\nHost: api\r\nX-User: %[1]s\r\n\r\n", user)
		_, _, first := ReadAnswer(t, br, "POST")
		_, _, second := ReadAnswer(t, br, "GET")
		Want(t, "answers", first+" | "+second, who+" POST 3 0 | "+who+" GET 0 0")
	}, false},
	{"large headers", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nX-Big: %s\r\n\r\n", user, strings.Repeat("b", 200<<10))
		_, _, body := ReadAnswer(t, br, "GET")
		Want(t, "answer", body, fmt.Sprintf("%s GET 0 %d", who, 200<<10))
	}, false},
	{"a slow client's body", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nContent-Length: 10\r\n\r\n", user)
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			io.WriteString(c, "ab")
		}
		_, _, body := ReadAnswer(t, br, "POST")
		Want(t, "answer", body, who+" POST 10 0")
	}, false},
}
