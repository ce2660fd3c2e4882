// Package role is what a node API client may do, and how its certificate
// says so. The builder (builder/pki) writes the role into the certificates
// it issues and the node (agent/api) reads it back; both import this
// package, which imports nothing of ours.
//
// The role is the certificate's Subject Organization, as Kubernetes carries
// groups (O=system:masters): exactly one of admin, operator and monitor.
//
//	tmpl.Subject = pkix.Name{CommonName: "grafana", Organization: []string{string(role.Monitor)}}
//	r, err := role.Of(cert) // role.Monitor
//
// Roles nest: an operator may do all a monitor may, an admin all an
// operator may. A certificate with no role, an unknown one or several is
// refused: there is no default.
package role

import (
	"crypto/x509"
	"fmt"
	"strings"
)

// Role is a client's role.
type Role string

// The roles, least to most.
const (
	// Monitor reads status, the service list and metrics.
	Monitor Role = "monitor"
	// Operator also restarts services, reads their logs, reboots and
	// upgrades.
	Operator Role = "operator"
	// Admin may do everything: also shut down, read the cluster's
	// kubeconfigs (its system:masters credentials), upload a CRL and set
	// the clock.
	Admin Role = "admin"
)

// All are the roles, least to most.
var All = []Role{Monitor, Operator, Admin}

// rank orders the roles; 0 is no role.
func (r Role) rank() int {
	for i, a := range All {
		if r == a {
			return i + 1
		}
	}
	return 0
}

// Valid reports whether r is one of All.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether r may do what needs does.
func (r Role) Allows(need Role) bool { return r.Valid() && need.Valid() && r.rank() >= need.rank() }

// AtLeast names the roles that may do what need does, e.g. "operator or
// admin".
func AtLeast(need Role) string {
	var names []string
	for _, a := range All {
		if a.Allows(need) {
			names = append(names, string(a))
		}
	}
	return strings.Join(names, " or ")
}

// Parse reads a role name, e.g. from a command line.
func Parse(s string) (Role, error) {
	if r := Role(s); r.Valid() {
		return r, nil
	}
	return "", fmt.Errorf("%q is not a role (roles: monitor, operator, admin)", s)
}

// Subject is the Organization list that carries r in a certificate.
func Subject(r Role) []string { return []string{string(r)} }

// Of returns the role cert carries: its one Subject Organization that names
// a role. No role, an unknown one or two different ones is an error.
func Of(cert *x509.Certificate) (Role, error) {
	var found Role
	for _, o := range cert.Subject.Organization {
		r := Role(o)
		if !r.Valid() {
			return "", fmt.Errorf("certificate '%s' has organization %q, which is not a role (monitor, operator, admin)", cert.Subject.CommonName, o)
		}
		if found != "" && found != r {
			return "", fmt.Errorf("certificate '%s' carries two roles, %s and %s", cert.Subject.CommonName, found, r)
		}
		found = r
	}
	if found == "" {
		return "", fmt.Errorf("certificate '%s' carries no role", cert.Subject.CommonName)
	}
	return found, nil
}
