package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("api")) })
	h := WithAPI(api)
	get := func(path string, header ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	for path, want := range map[string]string{
		"/":          "text/html; charset=utf-8",
		"/pod/x":     "text/html; charset=utf-8",
		"/app.js":    "text/javascript; charset=utf-8",
		"/style.css": "text/css; charset=utf-8",
	} {
		rec := get(path)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, rec.Code, rec.Header().Get("Content-Type"), want)
		}
		if rec.Header().Get("Cache-Control") != "no-cache" || rec.Header().Get("ETag") == "" {
			t.Errorf("GET %s: caching headers %v", path, rec.Header())
		}
	}
	if rec := get("/"); !strings.Contains(rec.Body.String(), `src="/app.js"`) {
		t.Errorf("GET /: not the index: %q", rec.Body.String())
	}
	if rec := get("/missing.js"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /missing.js: %d, want 404", rec.Code)
	}
	etag := get("/app.js").Header().Get("ETag")
	if rec := get("/app.js", "If-None-Match", etag); rec.Code != http.StatusNotModified {
		t.Errorf("GET /app.js with its ETag: %d, want 304", rec.Code)
	}
	for _, path := range []string{"/pods.v1.ChatService/SendMessage", "/grpc.health.v1.Health/Check"} {
		if rec := get(path); rec.Body.String() != "api" {
			t.Errorf("GET %s: not passed to the API: %q", path, rec.Body.String())
		}
	}
}
