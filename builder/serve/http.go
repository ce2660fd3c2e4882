package serve

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/builder/netboot"
)

// The HTTP paths: an iPXE script per architecture, and the bundle's files
// under their architecture's folder. rootScript is what a site's DHCP
// server hands every iPXE client (Options): it chains to its
// architecture's script by iPXE's own ${buildarch}.
const (
	rootScript   = "/boot.ipxe"
	scriptPrefix = "/ipxe/"
)

// scriptPath is the path of the iPXE script of the Go architecture goarch.
func scriptPath(goarch string) string { return scriptPrefix + goarch }

// buildArchs maps the names an iPXE script may ask for (a GOARCH, or
// iPXE's ${buildarch}) to the architecture folder: iPXE for a PC BIOS is
// an i386 build, and boots an x86-64 kernel.
var buildArchs = map[string]string{"amd64": "amd64", "x86_64": "amd64", "i386": "amd64", "arm64": "arm64"}

// Transfer is one HTTP request served.
type Transfer struct {
	Client, Path string
	Status       int
	Bytes        int64
	Took         time.Duration
}

// Handler serves the bundle over HTTP, logging each request to log and
// reporting it to served when that is set.
func (b *Bundle) Handler(log *slog.Logger, served func(Transfer)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+rootScript, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "#!ipxe\nchain %s%s${buildarch}\n", base(r), scriptPrefix)
	})
	mux.HandleFunc("GET "+scriptPrefix+"{arch}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := b.archs[buildArchs[r.PathValue("arch")]]
		if !ok {
			// iPXE shows the body: say what to do on the machine's screen.
			http.Error(w, fmt.Sprintf("#!ipxe\necho cairn serve holds no bundle for %s (it holds %s)\nshell\n", r.PathValue("arch"), strings.Join(b.Archs(), ", ")), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, a.script(base(r)))
	})
	mux.HandleFunc("GET /{arch}/{file}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := b.archs[r.PathValue("arch")]
		name := r.PathValue("file")
		if !ok || !a.holds(name) {
			http.NotFound(w, r) // only what the manifests name
			return
		}
		f, err := os.Open(filepath.Join(a.dir, name))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.ServeContent(w, r, name, st.ModTime(), f)
	})
	return logged(mux, log, served)
}

// base is the URL the client reached this server at.
func base(r *http.Request) string { return "http://" + r.Host }

// holds says whether the manifest names the file.
func (a arch) holds(name string) bool {
	for _, f := range a.m.Files() {
		if f.Name == name {
			return true
		}
	}
	return false
}

// script is the iPXE script that boots the architecture from base.
func (a arch) script(base string) string {
	url := func(f netboot.File) string { return base + "/" + a.m.Arch + "/" + f.Name }
	var s strings.Builder
	fmt.Fprintf(&s, "#!ipxe\necho Cairn %s %s (%s) from %s\n", a.m.Name, a.m.Version, a.m.Arch, base)
	fmt.Fprintf(&s, "kernel %s %s\n", url(a.m.Kernel), a.m.Cmdline)
	for _, f := range a.m.Initrds {
		fmt.Fprintf(&s, "initrd %s\n", url(f))
	}
	s.WriteString("boot\n")
	return s.String()
}

// logged logs every request h serves: who, what, how much, how long.
func logged(h http.Handler, log *slog.Logger, served func(Transfer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(cw, r)
		t := Transfer{Client: r.RemoteAddr, Path: r.URL.Path, Status: cw.status, Bytes: cw.n, Took: time.Since(start)}
		log.Info("http", "client", t.Client, "path", t.Path, "status", t.Status, "bytes", t.Bytes, "took", t.Took.Round(time.Millisecond))
		if served != nil {
			served(t)
		}
	})
}

// countingWriter counts what a handler wrote.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}
