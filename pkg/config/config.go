// Package config reads the configuration file of `kubectl mirrord exec`: the fields users of
// mirrord already write (target, feature.env, feature.fs, feature.network, agent), in JSON,
// YAML or TOML. Parsing is strict: an unknown key or a bad value is an error that names the
// key and says how to fix it. Keys mirrord has but that an installation decides here (the
// agent's image or namespace, say) are accepted with a warning.
//
// The features come out in the API's shape (mirrordv1alpha1.Features), checked by the same
// validation the member and the agent run; Key names its field paths the way the file does.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1/validation"
)

// EnvVar names a config file to use when -f is not given, as mirrord's MIRRORD_CONFIG_FILE.
const EnvVar = "MIRRORD_CONFIG_FILE"

// DefaultPaths are read, the first that exists, when neither -f nor EnvVar names a file:
// where mirrord users keep a project's config (.mirrord/mirrord.json, as mirrord's -f
// without a value and its IDE extensions use).
var DefaultPaths = []string{".mirrord/mirrord.json", ".mirrord/mirrord.yaml", ".mirrord/mirrord.yml", ".mirrord/mirrord.toml"}

// File is a parsed config file. Unset fields are nil: flags and defaults apply to them.
type File struct {
	// Path the file was read from (empty when parsed from bytes).
	Path string

	Target      *string
	Container   *string
	Namespace   *string
	KubeContext *string
	Kubeconfig  *string

	// Features are the file's feature section in the API's shape (what the session's spec
	// carries): what the file does not set is left zero, for flags and defaults to fill.
	Features mirrordv1alpha1.Features

	// DBBranches are feature.db_branches: the database branches the session's command uses,
	// without owner and target (the session's).
	DBBranches []mirrordv1alpha1.MirrordDBBranchSpec

	// SplitQueues are feature.split_queues: the queue messages the session's command takes.
	SplitQueues []QueueSplit

	// FSMapping is feature.fs.mapping: path patterns of this machine and the target's paths
	// they stand for (fsmap), applied by the local sandbox only.
	FSMapping map[string]string

	// EnvFile is feature.env.env_file: a file of NAME=value lines read on this machine.
	EnvFile *string

	// SessionTTL is agent.ttl: seconds the session lives after the last heartbeat.
	SessionTTL *int32
	// StartupTimeout is agent.startup_timeout: how long to wait for the session's agents.
	StartupTimeout *time.Duration

	// Warnings are keys read but not applied, each with the reason.
	Warnings []string
}

// Error is a bad key or value in a config file.
type Error struct {
	File, Key, Msg string
}

func (e *Error) Error() string {
	where := "config file"
	if e.File != "" {
		where += " " + e.File
	}
	if e.Key == "" {
		return where + ": " + e.Msg
	}
	return where + ": " + e.Key + ": " + e.Msg
}

// Load reads path, choosing the format by its extension (.json, .yaml/.yml, .toml).
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	if isTemplate(b) {
		if b, err = Render(b, DefaultTemplateVars()); err != nil {
			return nil, &Error{File: path, Msg: err.Error()}
		}
	}
	f, err := Parse(b, Format(path))
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.File = path
		}
		return nil, err
	}
	f.Path = path
	return f, nil
}

// Format is the format a file name says: "json", "yaml" or "toml"; "" if none.
func Format(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return "json"
	case ".yaml", ".yml":
		return "yaml"
	case ".toml":
		return "toml"
	}
	return ""
}

// Parse parses a config in format ("json", "yaml" or "toml").
func Parse(b []byte, format string) (*File, error) {
	var doc any
	switch format {
	case "json":
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.UseNumber()
		if err := d.Decode(&doc); err != nil {
			return nil, &Error{Msg: "not valid JSON: " + err.Error()}
		}
		if d.More() {
			return nil, &Error{Msg: "not valid JSON: more than one value"}
		}
	case "yaml":
		j, err := yaml.YAMLToJSONStrict(b)
		if err != nil {
			return nil, &Error{Msg: "not valid YAML: " + err.Error()}
		}
		d := json.NewDecoder(strings.NewReader(string(j)))
		d.UseNumber()
		if err := d.Decode(&doc); err != nil {
			return nil, &Error{Msg: "not valid YAML: " + err.Error()}
		}
	case "toml":
		var m map[string]any
		if err := toml.Unmarshal(b, &m); err != nil {
			msg := err.Error()
			var de *toml.DecodeError
			if errors.As(err, &de) {
				row, col := de.Position()
				msg = fmt.Sprintf("line %d column %d: %s", row, col, de.Error())
			}
			return nil, &Error{Msg: "not valid TOML: " + msg}
		}
		doc = m
	default:
		return nil, &Error{Msg: fmt.Sprintf("unknown format %q: name the file .json, .yaml, .yml or .toml", format)}
	}
	if doc == nil {
		doc = map[string]any{}
	}
	f := &File{}
	if err := f.read(node{v: doc}); err != nil {
		return nil, err
	}
	// The values' meaning (regexes, patterns, ports) is checked by the one function the CLI,
	// the member and the agent use; its errors are named by the keys of the file.
	if errs := validation.ValidateFeatures(&f.Features, field.NewPath("feature")); len(errs) > 0 {
		e := errs[0]
		return nil, &Error{Key: Key(e.Field), Msg: FieldMessage(e)}
	}
	return f, nil
}

// keys are the config file's names of the API's feature fields (validation's field paths).
var keys = map[string]string{
	"feature.env.include":                              "feature.env.include",
	"feature.env.exclude":                              "feature.env.exclude",
	"feature.env.override":                             "feature.env.override",
	"feature.env.mapping":                              "feature.env.mapping",
	"feature.env.unset":                                "feature.env.unset",
	"feature.fs.mode":                                  "feature.fs.mode",
	"feature.fs.readOnly":                              "feature.fs.read_only",
	"feature.fs.readWrite":                             "feature.fs.read_write",
	"feature.fs.local":                                 "feature.fs.local",
	"feature.fs.notFound":                              "feature.fs.not_found",
	"feature.network.incoming.mode":                    "feature.network.incoming.mode",
	"feature.network.incoming.ports":                   "feature.network.incoming.ports",
	"feature.network.incoming.ignorePorts":             "feature.network.incoming.ignore_ports",
	"feature.network.incoming.portMapping":             "feature.network.incoming.port_mapping",
	"feature.network.incoming.httpFilter.header":       "feature.network.incoming.http_filter.header_filter",
	"feature.network.incoming.httpFilter.path":         "feature.network.incoming.http_filter.path_filter",
	"feature.network.incoming.httpFilter.method":       "feature.network.incoming.http_filter.method_filter",
	"feature.network.incoming.httpFilter.headerJQ":     "feature.network.incoming.http_filter.header_filter_jq",
	"feature.network.incoming.httpFilter.body.query":   "feature.network.incoming.http_filter.body_filter.query",
	"feature.network.incoming.httpFilter.body.matches": "feature.network.incoming.http_filter.body_filter.matches",
	"feature.network.incoming.httpFilter.allOf":        "feature.network.incoming.http_filter.all_of",
	"feature.network.incoming.httpFilter.anyOf":        "feature.network.incoming.http_filter.any_of",
	"feature.network.outgoing.filter":                  "feature.network.outgoing.filter",
	"feature.network.dns.filter":                       "feature.network.dns.filter",
	"feature.network.dns":                              "feature.network.dns",
}

// Key is the config file's key for an API field path: feature.fs.readOnly[2] is
// feature.fs.read_only[2], feature.network.incoming.portMapping[0].local is
// feature.network.incoming.port_mapping[0]. A path it does not know is returned as it is.
func Key(fieldPath string) string {
	base, index := SplitIndex(fieldPath)
	if k, ok := keys[base]; ok {
		return k + index
	}
	return fieldPath
}

// SplitIndex splits a field path at its first list index: feature.fs.local[2] is
// (feature.fs.local, [2]); what follows the index is dropped.
func SplitIndex(fieldPath string) (base, index string) {
	i := strings.IndexByte(fieldPath, '[')
	if i < 0 {
		return fieldPath, ""
	}
	j := strings.IndexByte(fieldPath[i:], ']')
	if j < 0 {
		return fieldPath[:i], ""
	}
	return fieldPath[:i], fieldPath[i : i+j+1]
}

// FieldMessage is a field error without its field: the bad value, then what is wrong, e.g.
// `"(": not a valid regular expression: ...`.
func FieldMessage(e *field.Error) string {
	switch e.Type {
	case field.ErrorTypeInvalid, field.ErrorTypeNotSupported:
		if e.BadValue != nil && e.BadValue != "" {
			if s, ok := e.BadValue.(string); ok {
				return fmt.Sprintf("%q: %s", s, e.Detail)
			}
			return fmt.Sprintf("%v: %s", e.BadValue, e.Detail)
		}
	}
	return e.ErrorBody()
}
