package config

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"testing"
)

// docExamples are the JSON examples of mirrord's own reference, as its schema's descriptions
// carry them (testdata/mirrord-3.250.0-schema.json): what mirrord's docs tell users to write.
// Examples that are not whole configs (not JSON by themselves, or fragments whose keys are
// not the config's top-level keys) are left out.
func docExamples(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("testdata/mirrord-3.250.0-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```json\n(.*?)```")
	var out []string
	var walk func(any)
	walk = func(o any) {
		switch o := o.(type) {
		case map[string]any:
			for k, v := range o {
				if s, ok := v.(string); ok && k == "description" {
					for _, m := range block.FindAllStringSubmatch(s, -1) {
						if json.Valid([]byte(m[1])) {
							out = append(out, m[1])
						}
					}
					continue
				}
				walk(v)
			}
		case []any:
			for _, v := range o {
				walk(v)
			}
		}
	}
	walk(schema)
	root := schema.(map[string]any)["properties"].(map[string]any)
	whole := out[:0]
	for _, ex := range out {
		var m map[string]any
		if json.Unmarshal([]byte(ex), &m) != nil {
			continue
		}
		isConfig := len(m) > 0
		for k := range m {
			_, known := root[k]
			isConfig = isConfig && known
		}
		if isConfig {
			whole = append(whole, ex)
		}
	}
	return whole
}

// TestMirrordDocExamples: every example config of mirrord's reference is accepted, or
// refused with a message naming its key and the reason: a feature not supported here, or
// one mirrord itself refuses when it runs (env include with exclude).
func TestMirrordDocExamples(t *testing.T) {
	examples := docExamples(t)
	if len(examples) < 50 {
		t.Fatalf("%d whole configs found in mirrord's reference, want about 55", len(examples))
	}
	vars := TemplateVars{Key: "k", GitBranch: "main", Getenv: func(string) (string, bool) { return "", false }}
	accepted, refused := 0, map[string]int{}
	for _, ex := range examples {
		text, err := Render([]byte(ex), vars)
		if err == nil {
			_, err = Parse(text, "json")
		}
		if err == nil {
			accepted++
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Key == "" || ce.Msg == "" {
			t.Errorf("an example of mirrord's reference is refused without naming its key: %v\n%s", err, ex)
			continue
		}
		refused[ce.Key+": "+ce.Msg]++
	}
	t.Logf("%d whole configs in mirrord's reference: %d accepted", len(examples), accepted)
	for why, n := range refused {
		t.Logf("refused %d: %s", n, why)
	}
	if accepted < len(examples)*3/4 {
		t.Errorf("only %d of %d accepted", accepted, len(examples))
	}
}
