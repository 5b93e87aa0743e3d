package cli

import "testing"

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"src/main.go":             "src/main.go",
		"héllo wörld.txt":         "héllo wörld.txt",
		"\x1b]0;PWNED\a":          `"\x1b]0;PWNED\a"`,
		"a\nb":                    `"a\nb"`,
		"csi\u009b2J":             `"csi\u009b2J"`,
		"raw\x9bbyte":             `"raw\x9bbyte"`,
		"rtl\u202etxt.exe":        `"rtl\u202etxt.exe"`,
		"tab\there":               `"tab\there"`,
		"echo hi && ls -la ./src": "echo hi && ls -la ./src",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}
