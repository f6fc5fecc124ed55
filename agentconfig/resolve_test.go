package agentconfig

import (
	"errors"
	"strings"
	"testing"
)

// TestFromAnnotationsFileClash: two outputs that would write the same file, or where one's file
// would have to be the other's directory, are denied at admission with both annotations named
// (the blamed one as the key, the other in the expectation).
func TestFromAnnotationsFileClash(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		// blamed is the annotation the denial is about, other the one it names beside it; both
		// empty: accepted.
		blamed, other string
	}{
		{"file annotation onto another secret's default file",
			map[string]string{Prefix + "secret-a": "secret/a", Prefix + "secret-b": "secret/b", Prefix + "file-b": "a"},
			Prefix + "file-b", Prefix + "secret-a"},
		{"default file of a later secret already chosen by an earlier file annotation",
			map[string]string{Prefix + "secret-a": "secret/a", Prefix + "file-a": "z", Prefix + "secret-z": "secret/z"},
			Prefix + "file-a", Prefix + "secret-z"},
		{"two file annotations, same file",
			map[string]string{Prefix + "secret-a": "secret/a", Prefix + "file-a": "conf/app.env", Prefix + "secret-b": "secret/b", Prefix + "file-b": "conf/app.env"},
			Prefix + "file-b", Prefix + "file-a"},
		{"inline template onto a secret's file",
			map[string]string{Prefix + "secret-a": "secret/a", Prefix + "template-t": "x", Prefix + "file-t": "a"},
			Prefix + "file-t", Prefix + "secret-a"},
		{"template's default file chosen by a secret's file annotation",
			map[string]string{Prefix + "template-t": "x", Prefix + "secret-a": "secret/a", Prefix + "file-a": "t"},
			Prefix + "file-a", Prefix + "template-t"},
		{"a file is another's directory",
			map[string]string{Prefix + "secret-a": "secret/a", Prefix + "file-a": "conf", Prefix + "secret-b": "secret/b", Prefix + "file-b": "conf/db/app.env"},
			Prefix + "file-b", Prefix + "file-a"},
		{"a default file is another's directory",
			map[string]string{Prefix + "secret-conf": "secret/a", Prefix + "secret-b": "secret/b", Prefix + "file-b": "conf/app.env"},
			Prefix + "file-b", Prefix + "secret-conf"},
		{"siblings in one directory", map[string]string{Prefix + "secret-a": "secret/a", Prefix + "file-a": "conf/a", Prefix + "secret-b": "secret/b", Prefix + "file-b": "conf/b"}, "", ""},
		{"name prefix is not a directory", map[string]string{Prefix + "secret-conf": "secret/a", Prefix + "secret-b": "secret/b", Prefix + "file-b": "config/app.env"}, "", ""},
		{"file annotation naming its own default", map[string]string{Prefix + "secret-a": "secret/a", Prefix + "file-a": "a"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ann[AnnotationRole] = "r"
			req, err := FromAnnotations(tc.ann, defaults)
			if tc.blamed == "" {
				if err != nil || req == nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %+v", req.Agent.Secrets)
			}
			var ae *AnnotationError
			if !errors.As(err, &ae) || ae.Key != tc.blamed || ae.Value != tc.ann[tc.blamed] {
				t.Fatalf("error %q: want an AnnotationError about %s=%q", err, tc.blamed, tc.ann[tc.blamed])
			}
			if !strings.Contains(ae.Expected, tc.other+"=") {
				t.Errorf("message %q does not name the other output %s", err, tc.other)
			}
		})
	}
}
