package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// WithUpgrades serves the upgrade endpoints and status's upgrade section.
func WithUpgrades(u Upgrades) Option {
	return func(s *Server) { s.upgrades = u }
}

// maxUpgradeRequest bounds POST /v1/upgrade's body.
const maxUpgradeRequest = 4 << 10

// startUpgrade is POST /v1/upgrade: 202 with the attempt once its
// artifact passed every check, 422 with the reason it was refused, 409
// while another runs.
func (s *Server) startUpgrade(w http.ResponseWriter, r *http.Request) {
	if !query(w, r) || !s.hasUpgrades(w) {
		return
	}
	var req UpgradeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxUpgradeRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "upgrade request: %v (send {\"ref\": \"REGISTRY/REPO:TAG\", \"force\": false})", err)
		return
	}
	up, err := s.upgrades.Start(r.Context(), req)
	switch {
	case errors.Is(err, ErrUpgradeBusy):
		writeError(w, http.StatusConflict, "%v", err)
	case errors.Is(err, ErrUpgradeRefused):
		writeError(w, http.StatusUnprocessableEntity, "%v", err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, "%v", err)
	default:
		writeJSON(w, http.StatusAccepted, up)
	}
}

// upgrade is GET /v1/upgrade: the current or last attempt.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) {
	if !query(w, r) || !s.hasUpgrades(w) {
		return
	}
	writeJSON(w, http.StatusOK, s.upgrades.Progress())
}

func (s *Server) hasUpgrades(w http.ResponseWriter) bool {
	if s.upgrades == nil {
		writeError(w, http.StatusNotFound, "this node cannot be upgraded: its image spec has no update section")
		return false
	}
	return true
}
