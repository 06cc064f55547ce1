package incoming

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestReadFinal: the command's 1xx answers are passed on as they come, and the final one is
// returned.
func TestReadFinal(t *testing.T) {
	hint := "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
	final := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	req := &http.Request{Method: http.MethodGet}
	var st bytes.Buffer
	resp, err := readFinal(bufio.NewReader(strings.NewReader("HTTP/1.1 100 Continue\r\n\r\n"+hint+final)), req, &st)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readFinal = %v, %v", resp, err)
	}
	if got := st.String(); strings.Count(got, "HTTP/1.1 1") != 2 || !strings.Contains(got, "Link: </a.css>") {
		t.Errorf("passed on %q, want the 100 and the 103 with its header", got)
	}
}
