package cli

import (
	"encoding/json"
	"io"
)

// writeJSON prints v as one JSON object followed by a newline.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
