package role

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

func TestOf(t *testing.T) {
	tests := []struct {
		org     []string
		want    Role
		wantErr bool
	}{
		{[]string{"admin"}, Admin, false},
		{[]string{"operator"}, Operator, false},
		{[]string{"monitor", "monitor"}, Monitor, false},
		{nil, "", true},
		{[]string{"root"}, "", true},
		{[]string{"Admin"}, "", true},
		{[]string{"monitor", "admin"}, "", true},
	}
	for _, tt := range tests {
		got, err := Of(&x509.Certificate{Subject: pkix.Name{CommonName: "c", Organization: tt.org}})
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("Of(O=%v) = %q, %v; want %q, error %v", tt.org, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		r, need Role
		want    bool
	}{
		{Admin, Admin, true},
		{Admin, Monitor, true},
		{Operator, Admin, false},
		{Operator, Operator, true},
		{Monitor, Operator, false},
		{Monitor, Monitor, true},
		{"", Monitor, false},
		{Admin, "", false},
	}
	for _, tt := range tests {
		if got := tt.r.Allows(tt.need); got != tt.want {
			t.Errorf("%q.Allows(%q) = %v, want %v", tt.r, tt.need, got, tt.want)
		}
	}
	if got, want := AtLeast(Operator), "operator or admin"; got != want {
		t.Errorf("AtLeast(Operator) = %q, want %q", got, want)
	}
}
