package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/cairn-edge/cairn/agent/api/crl"
	"github.com/cairn-edge/cairn/agent/api/role"
)

// identity is who sent a request: its certificate's common name and role.
type identity struct {
	name string
	role role.Role
}

type identityKey struct{}

// callerOf is the identity authenticate found, zero before it ran.
func callerOf(r *http.Request) identity {
	id, _ := r.Context().Value(identityKey{}).(identity)
	return id
}

// secretReads are the GETs that hand out credentials: audited like calls
// that change state.
var secretReads = map[string]bool{"/v1/kubeconfig": true, "/v1/join-kubeconfig": true}

// audited reports whether r goes into the audit log.
func audited(r *http.Request) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead || secretReads[r.URL.Path]
}

// authenticate refuses requests that did not come over TLS with a verified
// client certificate (ServerTLS already refuses those handshakes; this
// guards against the handler being served some other way by mistake), with
// a revoked one (a connection opened before its CRL arrived) or without a
// valid role, and writes the audit line of every call that changes state
// or reads credentials, refused or not.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
			writeError(w, http.StatusUnauthorized, "a verified client certificate is required (use the node.yaml written with the image)")
			return
		}
		cert := r.TLS.PeerCertificates[0]
		id := identity{name: cert.Subject.CommonName}
		if audited(r) {
			defer func() { s.audit(r, id, w) }()
		}
		if s.crl != nil && s.crl.Revoked(cert.SerialNumber) {
			writeError(w, http.StatusForbidden, "credential '%s' is revoked (ask an admin for a new one: cairn node issue)", id.name)
			return
		}
		rl, err := role.Of(cert)
		if err != nil {
			writeError(w, http.StatusForbidden, "%v: the node serves only certificates with a role (admin, operator or monitor); run cairn build again to renew the image's node.yaml, or get one with cairn node issue --role ROLE", err)
			return
		}
		id.role = rl
		r2 := r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
		next.ServeHTTP(w, r2)
		r.Pattern = r2.Pattern // as the mux set it, for observe's metrics
	})
}

// allow replies 403 and returns false unless the caller's role may call rt.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, rt route) bool {
	id := callerOf(r)
	if rt.role.Valid() && id.role.Allows(rt.role) {
		return true
	}
	if !rt.role.Valid() { // not in the table: nobody (default deny)
		writeError(w, http.StatusForbidden, "%s %s is open to no role", rt.method, rt.path)
		return false
	}
	writeError(w, http.StatusForbidden, "%s credential '%s' may not %s %s: needs %s", id.role, id.name, r.Method, r.URL.Path, role.AtLeast(rt.role))
	return false
}

// audit logs one line for a call: who, with which role, what, and the
// answer.
func (s *Server) audit(r *http.Request, id identity, w http.ResponseWriter) {
	status := http.StatusOK
	if rec, ok := w.(*recorder); ok && rec.status != 0 {
		status = rec.status
	}
	rl := string(id.role)
	if rl == "" {
		rl = "none"
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "audit", slog.String("client", id.name), slog.String("role", rl),
		slog.String("call", r.Method+" "+r.URL.Path), slog.Int("status", status), slog.String("remote", r.RemoteAddr))
}

// WithCRL makes the server refuse clients store revokes, at the handshake
// and at every request, and serves POST /v1/crl to replace the list.
func WithCRL(store *crl.Store) Option {
	return func(s *Server) { s.crl = store }
}

// CRLReply is the body of a reply to POST /v1/crl.
type CRLReply struct {
	// Number is the CRL number in force.
	Number string `json:"number"`
	// Revoked counts the revoked certificates.
	Revoked int `json:"revoked"`
}

// installCRL takes a PEM CRL signed by the CA, newer than the one held.
func (s *Server) installCRL(w http.ResponseWriter, r *http.Request) {
	if !query(w, r) {
		return
	}
	if s.crl == nil {
		writeError(w, http.StatusNotFound, "this node keeps no revocation list (its agent runs without one)")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, crl.MaxSize))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "CRL: %v (at most %d bytes)", err, crl.MaxSize)
		return
	}
	l, err := s.crl.Install(data)
	switch {
	case errors.Is(err, crl.ErrOlder):
		writeError(w, http.StatusConflict, "%v", err)
		return
	case errors.Is(err, crl.ErrInvalid):
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	s.log.Warn("api: revocation list installed", "number", l.Number.String(), "revoked", l.Len())
	writeJSON(w, http.StatusOK, CRLReply{Number: l.Number.String(), Revoked: l.Len()})
}
