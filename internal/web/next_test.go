package web

import "testing"

func TestSafeNext(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/account/sessions", "/account/sessions"},
		{"/?a=b&c=d", "/?a=b&c=d"},
		{"//evil.example", "/"},
		{"///evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"http:evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.example", "/"},
		{"/%2F/evil.example", "/"},
		{"/%2f%2fevil.example", "/"},
		{"/%5Cevil.example", "/"},
		{"/a\\b", "/"},
		{"/a\x00b", "/"},
		{"/a\r\nLocation: x", "/"},
		{" /", "/"},
	} {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "//x", "/\\x", "https://x", "/%2F%2Fx", "/a?b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := safeNext(in)
		if got == "/" {
			return
		}
		if got != in || len(got) < 1 || got[0] != '/' || (len(got) > 1 && (got[1] == '/' || got[1] == '\\')) {
			t.Fatalf("safeNext(%q) = %q: not a plain local path", in, got)
		}
	})
}
