// Package regex compiles the regular expressions of HTTP filters as mirrord's fancy-regex
// reads them. An expression in RE2 syntax runs on Go's regexp, in linear time; one only a
// backtracking engine can run (look-around such as `^User-Agent: (?!kube-probe)`,
// backreferences, atomic groups) runs on regexp2, bounded by MatchTimeout and
// MaxBacktracking, so that no pattern and no request can hold an agent's goroutine: a match
// that runs out is no match (the request goes to the target).
package regex

import (
	"regexp"
	"sync/atomic"
	"time"

	"github.com/dlclark/regexp2/v2"
)

// MatchTimeout bounds one backtracking match; MaxBacktracking its stack (in slots).
const (
	MatchTimeout    = 50 * time.Millisecond
	MaxBacktracking = 1 << 20
)

// Regexp matches strings.
type Regexp interface {
	MatchString(s string) bool
	String() string
}

// Compile compiles expr: with Go's regexp when it can, otherwise with regexp2. The error is
// regexp2's when neither can (it reads the wider syntax).
func Compile(expr string) (Regexp, error) {
	if re, err := regexp.Compile(expr); err == nil {
		return re, nil
	}
	re, err := regexp2.Compile(expr, regexp2.RE2, regexp2.OptionMaxBacktrackingStackSize(MaxBacktracking))
	if err != nil {
		return nil, err
	}
	re.MatchTimeout = MatchTimeout
	return backtracking{re}, nil
}

// timedOut counts backtracking matches that ran out of time or stack (each was no match).
var timedOut atomic.Int64

// TimedOut is how many backtracking matches ran out of time or stack since the start.
func TimedOut() int64 { return timedOut.Load() }

type backtracking struct{ re *regexp2.Regexp }

func (b backtracking) MatchString(s string) bool {
	ok, err := b.re.MatchString(s)
	if err != nil {
		timedOut.Add(1)
		return false
	}
	return ok
}

func (b backtracking) String() string { return b.re.String() }
