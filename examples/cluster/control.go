package main

import (
	"errors"
	"html/template"
	"net/http"
	"slices"
)

// The nodes' controls: every node serves, at /nodes/, a page listing the
// nodes with a button to stop or start each, so that one can stop a node
// and watch its chat pages move to another, then start it again.

var nodesPage = template.Must(template.New("nodes").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Courier cluster: nodes</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>
  body { font: 15px/1.45 system-ui, sans-serif; color: #1d2430; background: #f4f5f7; margin: 0; padding: 24px; }
  main { max-width: 560px; margin: auto; background: #fff; border: 1px solid #dde1e6; border-radius: 10px; padding: 20px 24px; }
  h1 { font-size: 20px; margin: 0 0 8px; }
  p { color: #687385; margin: 0 0 14px; }
  table { width: 100%; border-collapse: collapse; }
  td, th { text-align: left; padding: 8px 6px; border-top: 1px solid #dde1e6; }
  .running { color: #1f8a4c; } .stopped { color: #c53030; }
  button { font: inherit; padding: 5px 14px; border: 0; border-radius: 6px; background: #2f6fde; color: #fff; cursor: pointer; }
  button:disabled { opacity: .5; cursor: default; }
  #problem { color: #c53030; }
</style>
</head>
<body>
<main>
<h1>Nodes</h1>
<p>Each node serves the chat on a port of its own, and they share its rooms through NATS. Stop a node: the chat
pages on it move to another node by themselves and miss nothing. Start it again: it serves its page again.</p>
{{if .Problem}}<p id="problem" role="alert">{{.Problem}}</p>{{end}}
<table>
<tr><th>Node</th><th>Page</th><th>State</th><th></th></tr>
{{range .Nodes}}<tr id="node-{{.Name}}">
<td>{{.Name}}{{if .Self}} (this page){{end}}</td>
<td><a href="{{.URL}}">{{.URL}}</a></td>
<td class="state {{.State}}">{{.State}}</td>
<td><form method="post" action="/nodes/{{.Name}}/{{.Op}}"><button id="{{.Op}}-{{.Name}}" type="submit"{{if .Last}} disabled title="keep one node running: it serves this page"{{end}}>{{.Label}}</button></form></td>
</tr>
{{end}}</table>
</main>
</body>
</html>
`))

type nodeRow struct {
	Name, URL, State, Op, Label string
	Self, Last                  bool
}

// renderNodes writes the page as node self serves it.
func (c *chatCluster) renderNodes(w http.ResponseWriter, self *chatNode, status int, problem string) {
	var rows []nodeRow
	runs := 0
	for _, n := range c.nodes {
		if n.running() {
			runs++
		}
	}
	for _, n := range c.nodes {
		r := nodeRow{Name: n.name, URL: n.url, State: "stopped", Op: "start", Label: "Start", Self: n == self}
		if n.running() {
			r.State, r.Op, r.Label, r.Last = "running", "stop", "Stop", runs == 1
		}
		rows = append(rows, r)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	nodesPage.Execute(w, struct {
		Nodes   []nodeRow
		Problem string
	}{rows, problem})
}

// controlPage serves GET /nodes/ on every node.
func (c *chatCluster) controlPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.renderNodes(w, c.byURL("http://"+r.Host+"/"), http.StatusOK, "")
	})
}

func (c *chatCluster) byURL(url string) *chatNode {
	i := slices.IndexFunc(c.nodes, func(n *chatNode) bool { return n.url == url })
	if i < 0 {
		return nil
	}
	return c.nodes[i]
}

// control serves POST /nodes/{node}/{op} on node self: op is "stop" or
// "start". It answers with a redirect to the nodes' page: this node's, or,
// when it stops itself, the next running node's. The last running node is
// not stopped: it would leave no page to start the others from. Only
// forms of the cluster's own pages are taken.
func (c *chatCluster) control(self *chatNode) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && c.byURL(o+"/") == nil {
			http.Error(w, "cluster: not from a page of this cluster", http.StatusForbidden)
			return
		}
		i := slices.IndexFunc(c.nodes, func(n *chatNode) bool { return n.name == r.PathValue("node") })
		if i < 0 {
			http.NotFound(w, r)
			return
		}
		n := c.nodes[i]
		c.ctl.Lock()
		defer c.ctl.Unlock()
		if c.closing.Load() {
			http.Error(w, "cluster: closing", http.StatusServiceUnavailable)
			return
		}
		var err error
		next := self
		switch op := r.PathValue("op"); {
		case op == "start" && !n.running():
			err = c.restart(i)
		case op == "stop" && n.running():
			err = c.stopNode(n, self)
			if n == self && err == nil {
				next = c.nodes[slices.IndexFunc(c.nodes, (*chatNode).running)]
			}
		case op != "start" && op != "stop":
			http.NotFound(w, r)
			return
		}
		if err != nil {
			c.renderNodes(w, self, http.StatusConflict, err.Error())
			return
		}
		http.Redirect(w, r, next.url+"nodes/", http.StatusSeeOther)
	})
}

// stopNode stops n unless it is the last one running. A node stopping
// itself is told to and not waited for: its server waits for this request
// to be answered (Close waits for it).
func (c *chatCluster) stopNode(n, self *chatNode) error {
	runs := 0
	for _, m := range c.nodes {
		if m.running() {
			runs++
		}
	}
	if runs == 1 {
		return errors.New("keep one node running: it serves the page that starts the others")
	}
	if n == self {
		n.halt()
		return nil
	}
	return n.stop()
}
