package report

import (
	"bufio"
	"io"
	"net/http"
	"slices"
	"time"
)

// KeepAliveRoundTrips writes request (a whole HTTP/1.1 request) n times, one after another,
// on c, reads each response to its end, and returns the round trips, sorted.
func KeepAliveRoundTrips(c io.ReadWriter, request []byte, n int) ([]time.Duration, error) {
	r := bufio.NewReader(c)
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := c.Write(request); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(start))
	}
	slices.Sort(out)
	return out, nil
}
