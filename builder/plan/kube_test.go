package plan

import "testing"

func TestImageDirName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"cairn.local/pause:3.10", "cairn.local_pause_3.10"},
		{"registry.example.com:5000/team/web:1.2", "registry.example.com_5000_team_web_1.2"},
		{"docker.io/library/nginx@sha256:abc", "docker.io_library_nginx_sha256_abc"},
		{"a/../../b:1", "a_.._.._b_1"},
	}
	for _, tt := range tests {
		if got := imageDirName(tt.in); got != tt.want {
			t.Errorf("imageDirName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
