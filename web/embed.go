// Package web serves the Pods web client: the bundle that `make web` builds
// from web/src into web/dist, embedded in the binary so that podsd needs no
// npm at run time.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// contentTypes are set explicitly, so that the answer does not depend on
// the host's MIME tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".map":  "application/json",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// csp allows the page only its own scripts, styles and API.
const csp = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type file struct {
	body        []byte
	etag        string
	contentType string
}

// Handler serves the client: a file of web/dist by its path, and index.html
// for / and every other path without an extension (the client routes
// itself; a missing asset is 404). Files carry a
// content hash as ETag and are revalidated on every load (no-cache), so a
// new podsd never leaves a browser on an old bundle.
func Handler() http.Handler {
	files := make(map[string]file)
	err := fs.WalkDir(dist, "dist", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := dist.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			ct = "application/octet-stream"
		}
		files["/"+strings.TrimPrefix(name, "dist/")] = file{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ct}
		return nil
	})
	if err != nil {
		panic("web: reading the embedded bundle: " + err.Error()) // the build embedded it: can't happen
	}
	index := files["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f, ok := files[r.URL.Path]
		switch {
		case ok:
		case path.Ext(r.URL.Path) != "":
			http.NotFound(w, r) // a missing asset, not a page
			return
		default:
			f = index
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("ETag", f.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		if f.contentType == index.contentType {
			h.Set("Content-Security-Policy", csp)
			h.Set("Referrer-Policy", "no-referrer")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}

// WithAPI serves api for RPC paths (Connect, gRPC and gRPC-Web procedures
// of pods.v1, gRPC health and reflection) and the web client for the rest.
func WithAPI(api http.Handler) http.Handler {
	client := Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/pods.v1.") || strings.HasPrefix(r.URL.Path, "/grpc.") {
			api.ServeHTTP(w, r)
			return
		}
		client.ServeHTTP(w, r)
	})
}
