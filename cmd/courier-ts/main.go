// Command courier-ts writes the TypeScript declarations of a Courier
// bridge into a front-end tree: client.d.ts, the browser client's, and
// topics.d.ts, the payload types of the topics the bridge exposes,
// generated from their Go types (package bridge/tsgen). It fetches both
// from the running bridge, which serves them at "<mount>client.d.ts" and
// "<mount>topics.d.ts", so what it writes is what the bridge serves,
// byte for byte:
//
//	go run github.com/courierbus/courier/cmd/courier-ts -url http://127.0.0.1:8080/bus/ -dir web/bus
//
// Put the files beside the page's import of "<mount>client.js" (here
// web/bus/, for import { connect } from './bus/client.js'), and TypeScript,
// or JavaScript checked with // @ts-check, finds them. With -check it
// writes nothing and exits 1 when the files in -dir differ from the
// bridge's, for CI.
//
// Flags:
//
//	-url    the bridge's mount URL, http:// or https:// (required)
//	-dir    the directory to write to (default ".")
//	-check  compare instead of writing
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// files are what the command writes, as the bridge serves them.
var files = [...]string{"client.d.ts", "topics.d.ts"}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("courier-ts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mount := fs.String("url", "", "the bridge's mount URL, e.g. http://127.0.0.1:8080/bus/")
	dir := fs.String("dir", ".", "the directory to write client.d.ts and topics.d.ts to")
	check := fs.Bool("check", false, "write nothing; exit 1 when the files in -dir differ from the bridge's")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *mount == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: courier-ts -url http://host/mount/ [-dir DIR] [-check]")
		return 2
	}
	base, err := url.Parse(*mount)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		fmt.Fprintf(stderr, "courier-ts: -url %q is not an http(s) URL\n", *mount)
		return 2
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	differ := false
	for _, name := range files {
		data, err := fetch(ctx, base.JoinPath(name).String())
		if err != nil {
			fmt.Fprintf(stderr, "courier-ts: %v\n", err)
			return 1
		}
		path := filepath.Join(*dir, name)
		if *check {
			have, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(have, data) {
				fmt.Fprintf(stdout, "%s differs from the bridge's %s\n", path, name)
				differ = true
			}
			continue
		}
		if err := write(path, data); err != nil {
			fmt.Fprintf(stderr, "courier-ts: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s\n", path)
	}
	if differ {
		return 1
	}
	return 0
}

// fetch GETs u and returns its body, or an error for any status but 200.
func fetch(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// write replaces path with data, through a temporary file, so a reader
// never sees half a file.
func write(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Chmod(0o644), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
