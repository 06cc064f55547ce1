package steal

import "net/http"

// RoundTripFunc answers a request the filter gave to the session.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip makes a RoundTripFunc an http.RoundTripper.
func (f RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
