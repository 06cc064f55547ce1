// Package cmdutil holds what every kubectl-mirrord command shares: exit codes, API error
// explanations and kubectl-style tables.
package cmdutil
