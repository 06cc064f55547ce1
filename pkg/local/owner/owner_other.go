//go:build !linux

package owner

// listenedBy cannot tell a port's owner here: every port counts as the command's (the
// README says so).
func listenedBy(uint16, int) (bool, error) { return true, nil }
