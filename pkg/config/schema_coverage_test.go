package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mirrordKeys walks mirrord's JSON schema (testdata, from mirrord 3.250.0) and returns every
// key path it defines, with the JSON type of its first object-free variant: feature.env.include
// string, ... Keys under a map (additionalProperties) are not walked.
func mirrordKeys(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("testdata/mirrord-3.250.0-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	defs, _ := root["$defs"].(map[string]any)
	keys := map[string]string{}
	var walk func(path string, node map[string]any, depth int)
	resolve := func(n map[string]any) map[string]any {
		for i := 0; i < 10; i++ {
			ref, ok := n["$ref"].(string)
			if !ok {
				return n
			}
			n, _ = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		return n
	}
	walk = func(path string, node map[string]any, depth int) {
		if depth > 16 || node == nil {
			return
		}
		node = resolve(node)
		// Variants (a key that takes a boolean or a table, say) describe the same path.
		for _, k := range []string{"anyOf", "oneOf", "allOf"} {
			if l, ok := node[k].([]any); ok {
				for _, v := range l {
					if m, ok := v.(map[string]any); ok {
						walk(path, m, depth+1)
					}
				}
			}
		}
		props, _ := node["properties"].(map[string]any)
		for k, p := range props {
			child := k
			if path != "" {
				child = path + "." + k
			}
			pm, _ := p.(map[string]any)
			if _, seen := keys[child]; !seen {
				keys[child] = typeOf(resolve(pm), resolve)
			}
			walk(child, pm, depth+1)
		}
	}
	walk("", root, 0)
	return keys
}

// typeOf is a schema node's first non-null, non-object JSON type ("object" if it only is one).
func typeOf(n map[string]any, resolve func(map[string]any) map[string]any) string {
	var types []string
	collect := func(n map[string]any) {
		switch t := n["type"].(type) {
		case string:
			types = append(types, t)
		case []any:
			for _, x := range t {
				if s, ok := x.(string); ok {
					types = append(types, s)
				}
			}
		}
		if _, ok := n["enum"]; ok {
			types = append(types, "enum")
		}
	}
	collect(n)
	for _, k := range []string{"anyOf", "oneOf"} {
		if l, ok := n[k].([]any); ok {
			for _, v := range l {
				if m, ok := v.(map[string]any); ok {
					collect(resolve(m))
				}
			}
		}
	}
	for _, t := range types {
		if t != "null" && t != "object" {
			return t
		}
	}
	if slices.Contains(types, "object") {
		return "object"
	}
	return "unknown"
}

// TestMirrordKeysAreKnown: every key of mirrord's schema is one this loader reads, ignores
// with a reason, or refuses as not supported with a reason; none is an "unknown key". The
// test logs the refused ones: what issue 22 has left to implement.
func TestMirrordKeysAreKnown(t *testing.T) {
	keys := mirrordKeys(t)
	if len(keys) < 100 {
		t.Fatalf("only %d keys found in mirrord's schema: the walk is broken", len(keys))
	}
	var unknown, refused []string
	for _, path := range slices.Sorted(maps.Keys(keys)) {
		doc := nest(path, sample(keys[path]))
		_, err := Parse([]byte(doc), "json")
		if err == nil {
			continue
		}
		msg := err.Error()
		switch {
		case strings.Contains(msg, "unknown key") && strings.Contains(msg, lastKey(path)):
			unknown = append(unknown, path)
		case strings.Contains(msg, "not supported"):
			refused = append(refused, path+": "+msg)
		}
	}
	for _, u := range unknown {
		t.Errorf("mirrord's key %s is unknown here: read it, or list it in ignored or unsupported with why", u)
	}
	t.Logf("%d keys in mirrord's schema; refused as not supported:\n%s", len(keys), strings.Join(refused, "\n"))
}

func lastKey(path string) string { return path[strings.LastIndex(path, ".")+1:] }

// sample is a value of the JSON type t.
func sample(t string) string {
	switch t {
	case "boolean":
		return "true"
	case "integer", "number":
		return "1"
	case "array":
		return "[]"
	case "object":
		return "{}"
	}
	return `"x"`
}

// nest is the JSON document that sets path to value.
func nest(path, value string) string {
	parts := strings.Split(path, ".")
	doc := value
	for i := len(parts) - 1; i >= 0; i-- {
		doc = `{"` + parts[i] + `": ` + doc + `}`
	}
	return doc
}

var update = flag.Bool("update", false, "rewrite the golden files (docs/mirrord-keys.md)")

// TestKeyReference: docs/mirrord-keys.md, the README's reference of mirrord's keys, says what
// this loader does with each key of mirrord's schema, and is current (go test
// ./pkg/config -run TestKeyReference -update rewrites it).
func TestKeyReference(t *testing.T) {
	keys := mirrordKeys(t)
	var b strings.Builder
	b.WriteString("# mirrord's configuration keys in kubectl-mirrord\n\n")
	b.WriteString("Every key of mirrord 3.250.0's configuration schema and what `kubectl mirrord exec -f` does\n")
	b.WriteString("with it: **works** (read and applied), **ignored** (accepted with one warning line saying\n")
	b.WriteString("why it does not apply here) or **not supported** (the file is refused with the reason).\n")
	b.WriteString("Generated by `go test ./pkg/config -run TestKeyReference -update` from\n")
	b.WriteString("`pkg/config/testdata/mirrord-3.250.0-schema.json`; the test fails when it is stale.\n\n")
	b.WriteString("| key | here |\n|---|---|\n")
	for _, path := range slices.Sorted(maps.Keys(keys)) {
		status := keyStatus(path, keys[path])
		fmt.Fprintf(&b, "| `%s` | %s |\n", path, strings.ReplaceAll(status, "|", "\\|"))
	}
	golden := filepath.Join("..", "..", "docs", "mirrord-keys.md")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(golden)
	if err != nil || string(got) != b.String() {
		t.Errorf("%s is stale (%v): go test ./pkg/config -run TestKeyReference -update", golden, err)
	}
}

// keyStatus says what the loader does with path, given a value of its JSON type: works (it
// reads the key; a value error on the key itself still means that), ignored (a warning says
// why) or not supported (the key, or the table holding it, is refused).
func keyStatus(path, typ string) string {
	doc := nest(path, sample(typ))
	if strings.HasPrefix(path, "feature.network.incoming.http_") {
		// An HTTP filter chooses what to steal: it takes mode steal beside it.
		doc = strings.Replace(doc, `{"incoming": {`, `{"incoming": {"mode": "steal", `, 1)
	}
	if path == "target.container" || path == "target.path.container" {
		// A container belongs to a workload named beside it.
		doc = strings.Replace(doc, `{"container": `, `{"deployment": "x", "container": `, 1)
	}
	f, err := Parse([]byte(doc), "json")
	if err == nil {
		for _, w := range f.Warnings {
			if k, why, ok := strings.Cut(w, " ignored: "); ok && (k == path || strings.HasPrefix(path, k+".")) {
				return "ignored: " + why
			}
		}
		return "works"
	}
	var ce *Error
	if !errors.As(err, &ce) {
		return "not supported: " + err.Error()
	}
	onKey := ce.Key == path || strings.HasPrefix(ce.Key, path+".") || strings.HasPrefix(ce.Key, path+"[")
	if onKey && !strings.Contains(ce.Msg, "not supported") {
		return "works"
	}
	return "not supported: " + ce.Msg
}
