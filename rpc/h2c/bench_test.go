package h2c_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkStreamEvents measures one small event (200 bytes, written and
// flushed, as a Subscribe stream sends it) from a handler to a client
// reading the stream, on this package's server and on net/http's HTTP/2
// server. The client's cost is in both.
func BenchmarkStreamEvents(b *testing.B) {
	event := bytes.Repeat([]byte("x"), 200)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("events"))
		for range n {
			w.Write(event)
			w.(http.Flusher).Flush()
		}
	})
	b.Run("h2c", func(b *testing.B) {
		benchmarkStream(b, startServer(b, &http.Server{Handler: handler}, nil).url)
	})
	b.Run("net-http", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		protocols := new(http.Protocols)
		protocols.SetUnencryptedHTTP2(true)
		srv := &http.Server{Handler: handler, Protocols: protocols}
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		benchmarkStream(b, "http://"+ln.Addr().String())
	})
}

func benchmarkStream(b *testing.B, url string) {
	b.ReportAllocs()
	b.SetBytes(200)
	resp, err := h2cClient(b).Get(url + "/?events=" + strconv.Itoa(b.N))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != int64(200*b.N) {
		b.Fatalf("read %d bytes (%v), want %d", n, err, 200*b.N)
	}
}
