// Package config reads the configuration file of `kubectl mirrord exec`: the fields users of
// mirrord already write (target, feature.env, feature.fs, feature.network, agent), in JSON,
// YAML or TOML. Parsing is strict: an unknown key or a bad value is an error that names the
// key and says how to fix it. Keys mirrord has but that an installation decides here (the
// agent's image or namespace, say) are accepted with a warning.
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
	"sigs.k8s.io/yaml"
)

// EnvVar names a config file to use when -f is not given, as mirrord's MIRRORD_CONFIG_FILE.
const EnvVar = "MIRRORD_CONFIG_FILE"

// File is a parsed config file. Unset fields are nil: flags and defaults apply to them.
type File struct {
	// Path the file was read from (empty when parsed from bytes).
	Path string

	Target      *string
	Container   *string
	Namespace   *string
	KubeContext *string
	Kubeconfig  *string

	Env      Env
	FS       FS
	Incoming Incoming
	Outgoing Outgoing
	// DNS is false when names are resolved locally.
	DNS *bool

	// SessionTTL is agent.ttl: seconds the session lives after the last heartbeat.
	SessionTTL *int32
	// StartupTimeout is agent.startup_timeout: how long to wait for the session's agents.
	StartupTimeout *time.Duration

	// Warnings are keys read but not applied, each with the reason.
	Warnings []string
}

// Env is feature.env.
type Env struct {
	Disabled         *bool
	Include, Exclude []string
	Override         map[string]string
}

// FS is feature.fs. The path lists are regular expressions.
type FS struct {
	Mode                                 *string
	ReadOnly, ReadWrite, Local, NotFound []string
}

// Incoming is feature.network.incoming.
type Incoming struct {
	Mode                 *string
	Header, Path, Method *string
	Ports, IgnorePorts   []int32
	// PortMapping holds {remote, local} pairs (the file writes them [local, remote], as mirrord).
	PortMapping [][2]int32
}

// Outgoing is feature.network.outgoing.
type Outgoing struct {
	TCP, UDP      *bool
	Local, Remote []string
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
	return f, nil
}
