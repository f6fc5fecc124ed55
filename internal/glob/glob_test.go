package glob

import "testing"

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"shop", "shop", true},
		{"shop", "shops", false},
		{"shop-*", "shop-web", true},
		{"shop-*", "shop-", true},
		{"shop-*", "shop", false},
		{"*", "", true},
		{"*", "a/b", false},
		{"**", "a/b", true},
		{"secret/data/shop/*", "secret/data/shop/db", true},
		{"secret/data/shop/*", "secret/data/shop/db/x", false},
		{"secret/data/shop/**", "secret/data/shop/db/x", true},
		{"secret/data/shop/**", "secret/data/other/x", false},
		{"**/x*", "a/x1/x2", true},
		{"a/**/b/*", "a/x/y/b/z", true},
		{"a/**/b/*", "a/x/y/b/z/w", false},
		{"pki/issue/?eb", "pki/issue/web", true},
		{"pki/issue/?eb", "pki/issue//eb", false},
		{"https://vault-*.example.com:8200", "https://vault-1.example.com:8200", true},
		{"https://vault-*.example.com:8200", "https://evil.com/x.example.com:8200", false},
	} {
		if got := Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		ok      bool
	}{{"a*", true}, {"**", true}, {"", false}, {"a/***", false}} {
		if err := Validate(tc.pattern); (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.pattern, err, tc.ok)
		}
	}
}

// FuzzMatch checks the matcher never panics and agrees with itself on literal patterns.
func FuzzMatch(f *testing.F) {
	f.Add("a/**/b/*", "a/x/b/c")
	f.Add("*?*", "")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 256 || len(s) > 256 {
			return
		}
		_ = Match(pattern, s)
		if !Match(escapeless(s), s) && escapeless(s) == s {
			t.Fatalf("literal %q does not match itself", s)
		}
	})
}

// escapeless is s when it has no wildcard characters, else a string that differs from s.
func escapeless(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '*' || s[i] == '?' {
			return s + "\x00"
		}
	}
	return s
}
