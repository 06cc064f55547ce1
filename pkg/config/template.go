package config

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/nikolalohinski/gonja/v2/builtins"
	gonjaconfig "github.com/nikolalohinski/gonja/v2/config"
	gonjaexec "github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// mirrord renders every config file as a Tera template before parsing it (Tera is Jinja2's
// Rust cousin): `{{ get_env(name="TARGET", default="deploy/api") }}`, `{{ key }}`,
// `{{ git_branch | default(value="main") }}`. gonja, a Jinja2 engine, renders them here,
// with Tera's spellings where the two differ: get_env, and default's `value=`.

// TemplateVars are what a config template may read besides the environment.
type TemplateVars struct {
	// Key is mirrord's session key: $MIRRORD_ENV_KEY, or a random one.
	Key string
	// GitBranch is the checkout's current branch; empty leaves git_branch undefined (so
	// `default` applies), as mirrord does where it cannot tell.
	GitBranch string
	// Getenv reads the environment (os.LookupEnv by default).
	Getenv func(string) (string, bool)
}

// isTemplate says whether text has any template syntax: most config files have none, and
// are parsed as they are.
func isTemplate(text []byte) bool {
	return bytes.Contains(text, []byte("{{")) || bytes.Contains(text, []byte("{%")) || bytes.Contains(text, []byte("{#"))
}

// Render renders text, a config file's contents, as mirrord does.
func Render(text []byte, vars TemplateVars) ([]byte, error) {
	if !isTemplate(text) {
		return text, nil
	}
	if vars.Getenv == nil {
		vars.Getenv = os.LookupEnv
	}
	filters := gonjaexec.NewFilterSet(map[string]gonjaexec.FilterFunction{}).Update(builtins.Filters)
	if err := filters.Replace("default", teraDefault); err != nil {
		return nil, err
	}
	env := &gonjaexec.Environment{
		Context: gonjaexec.EmptyContext().Update(builtins.GlobalFunctions).Update(gonjaexec.NewContext(map[string]any{
			"get_env": getEnv(vars.Getenv),
		})),
		Filters:           filters,
		Tests:             builtins.Tests,
		ControlStructures: builtins.ControlStructures,
		Methods:           builtins.Methods,
	}
	cfg := gonjaconfig.New()
	cfg.StrictUndefined = true // as Tera: an unknown variable is an error, unless defaulted
	cfg.KeepTrailingNewline = true
	loader, err := loaders.NewFileSystemLoader("")
	if err != nil {
		return nil, err
	}
	root, err := loaders.NewShiftedLoader("config", bytes.NewReader(text), loader)
	if err != nil {
		return nil, err
	}
	tpl, err := gonjaexec.NewTemplate("config", cfg, root, env)
	if err != nil {
		return nil, fmt.Errorf("the config file's template: %w", err)
	}
	data := map[string]any{"key": vars.Key}
	if vars.GitBranch != "" {
		data["git_branch"] = vars.GitBranch
	}
	out, err := tpl.ExecuteToBytes(gonjaexec.NewContext(data))
	if err != nil {
		return nil, fmt.Errorf("rendering the config file's template: %w", err)
	}
	return out, nil
}

// getEnv is Tera's get_env(name=..., default=...): an unset variable without a default is
// an error naming it.
func getEnv(lookup func(string) (string, bool)) func(*gonjaexec.Evaluator, *gonjaexec.VarArgs) *gonjaexec.Value {
	return func(_ *gonjaexec.Evaluator, params *gonjaexec.VarArgs) *gonjaexec.Value {
		name, def := params.KwArgs["name"], params.KwArgs["default"]
		if name == nil && len(params.Args) > 0 {
			name = params.Args[0]
		}
		if name == nil || !name.IsString() {
			return gonjaexec.AsValue(errors.New(`get_env needs name="VARIABLE"`))
		}
		if v, ok := lookup(name.String()); ok {
			return gonjaexec.AsValue(v)
		}
		if def != nil {
			return def
		}
		return gonjaexec.AsValue(fmt.Errorf("get_env: environment variable %s is not set, and no default= is given", name.String()))
	}
}

// teraDefault is default(value=...) as Tera writes it, or Jinja2's default(...).
func teraDefault(_ *gonjaexec.Evaluator, in *gonjaexec.Value, params *gonjaexec.VarArgs) *gonjaexec.Value {
	def := params.KwArgs["value"]
	if def == nil && len(params.Args) > 0 {
		def = params.Args[0]
	}
	if def == nil {
		return gonjaexec.AsValue(errors.New(`default needs value="..."`))
	}
	if in.IsError() || in.IsNil() {
		return def
	}
	return in
}

// DefaultTemplateVars are mirrord's: the key from $MIRRORD_ENV_KEY (or a new one) and the
// git branch of the working directory, if any.
func DefaultTemplateVars() TemplateVars {
	vars := TemplateVars{Key: os.Getenv("MIRRORD_ENV_KEY")}
	if vars.Key == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		vars.Key = hex.EncodeToString(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--abbrev-ref", "HEAD").Output(); err == nil {
		if b := strings.TrimSpace(string(out)); b != "" && b != "HEAD" {
			vars.GitBranch = b
		}
	}
	return vars
}
