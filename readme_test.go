package courier_test

import (
	"bytes"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// snippet is a ```go block of README.md, with the console session that
// follows it, if any: the commands ("$ go run .") and what each prints.
type snippet struct {
	line int    // where the block starts in README.md
	code string // a whole program: package main
	runs []run  // the ```console block after it
}

type run struct {
	command string // "go run ."
	want    string // its output
}

// readmeSnippets returns the ```go blocks of the README. A ```console
// block right after one (nothing but blank lines between) shows it run:
// lines starting with "$ " are commands, and the lines up to the next
// command are what it prints.
func readmeSnippets(t *testing.T, readme string) []snippet {
	t.Helper()
	var out []snippet
	lines := strings.Split(readme, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```go" {
			continue
		}
		s := snippet{line: i + 1}
		body, end := fenced(lines, i)
		if end < 0 {
			t.Fatalf("README.md:%d: the ```go block does not end", i+1)
		}
		s.code = body
		i = end
		next := i + 1
		for next < len(lines) && strings.TrimSpace(lines[next]) == "" {
			next++
		}
		if next < len(lines) && strings.TrimSpace(lines[next]) == "```console" {
			session, cend := fenced(lines, next)
			if cend < 0 {
				t.Fatalf("README.md:%d: the ```console block does not end", next+1)
			}
			for _, l := range strings.Split(strings.TrimSuffix(session, "\n"), "\n") {
				if cmd, ok := strings.CutPrefix(l, "$ "); ok {
					s.runs = append(s.runs, run{command: cmd})
				} else if len(s.runs) > 0 {
					s.runs[len(s.runs)-1].want += l + "\n"
				} else {
					t.Fatalf("README.md:%d: the ```console block starts with %q, not a command", next+1, l)
				}
			}
			i = cend
		}
		out = append(out, s)
	}
	return out
}

// fenced returns the text of the fenced block opening at lines[i] and the
// index of its closing line (-1 when there is none).
func fenced(lines []string, i int) (string, int) {
	var b strings.Builder
	for j := i + 1; j < len(lines); j++ {
		if strings.TrimSpace(lines[j]) == "```" {
			return b.String(), j
		}
		b.WriteString(lines[j])
		b.WriteByte('\n')
	}
	return "", -1
}

// TestReadmeSnippets builds every ```go block of README.md as a program
// of its own, in a module of its own that requires this one (replaced by
// this tree), as a reader who pastes it would; vets it; checks it is
// gofmt'd; and runs the ones the README shows running, comparing what
// they print. A snippet that no longer compiles, or prints something else,
// fails here.
func TestReadmeSnippets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs: skipped with -short")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	snippets := readmeSnippets(t, string(readme))
	if len(snippets) < 4 {
		t.Fatalf("README.md has %d ```go blocks, want at least 4", len(snippets))
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	goTool := goCommand(t)
	for _, s := range snippets {
		t.Run(fmt.Sprintf("README.md:%d", s.line), func(t *testing.T) {
			t.Parallel()
			if !strings.HasPrefix(s.code, "package main\n") {
				t.Fatalf("README.md:%d: the snippet is not a whole program (package main):\n%s", s.line, s.code)
			}
			if f, err := format.Source([]byte(s.code)); err != nil || !bytes.Equal(f, []byte(s.code)) {
				t.Errorf("README.md:%d: the snippet is not gofmt'd (%v)", s.line, err)
			}
			dir := t.TempDir()
			mod := "module readme\n\ngo 1.26.0\n\nrequire github.com/courierbus/courier v0.0.0\n\n" +
				"replace github.com/courierbus/courier => " + root + "\n"
			for name, data := range map[string][]byte{"go.mod": []byte(mod), "go.sum": sum, "main.go": []byte(s.code)} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			goCmd := func(args ...string) string {
				t.Helper()
				cmd := exec.Command(goTool, args...)
				cmd.Dir = dir
				// -mod=mod: the snippet's module lists only this one; its
				// other requirements come from this module's go.mod and go.sum.
				cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("README.md:%d: go %s: %v\n%s", s.line, strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			exe := filepath.Join(dir, "snippet")
			goCmd("build", "-o", exe, ".")
			goCmd("vet", ".")
			for _, r := range s.runs {
				if r.command != "go run ." {
					t.Fatalf("README.md:%d: the console runs %q; this test knows only \"go run .\"", s.line, r.command)
				}
				cmd := exec.Command(exe)
				cmd.Dir = dir
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("README.md:%d: %s: %v\n%s", s.line, r.command, err, stderr.Bytes())
				}
				if got := stdout.String(); got != r.want {
					t.Errorf("README.md:%d: %s printed\n%s\nwant (as the README shows)\n%s", s.line, r.command, got, r.want)
				}
			}
		})
	}
}

// goCommand returns the go command that runs this test.
func goCommand(t *testing.T) string {
	t.Helper()
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command: %v", err)
	}
	return p
}

// TestDocTourIsExample checks that the tour in doc.go is the function tour
// of example_test.go, which Example runs: the package doc shows code that
// compiles and prints what it says.
func TestDocTourIsExample(t *testing.T) {
	ex, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(ex, []byte("func tour("))
	if i < 0 {
		t.Fatal("example_test.go has no func tour")
	}
	want := string(ex[i:])
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	in := false
	for _, l := range strings.Split(string(doc), "\n") {
		switch {
		case strings.HasPrefix(l, "//\tfunc tour("):
			in = true
		case in && !strings.HasPrefix(l, "//\t") && l != "//":
			in = false
		}
		if in {
			code := strings.TrimPrefix(strings.TrimPrefix(l, "//"), "\t")
			got.WriteString(code + "\n")
		}
	}
	if g := strings.TrimRight(got.String(), "\n") + "\n"; g != want {
		t.Errorf("doc.go's tour is not example_test.go's func tour:\n--- doc.go\n%s--- example_test.go\n%s", g, want)
	}
}
