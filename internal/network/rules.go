package network

import "github.com/pyrovm/pyro/internal/network/egress"

// Rules is the egress allow list (package egress, where it is validated;
// this package compiles and enforces it).
type Rules = egress.Rules

// Presets, PresetNames and NormalizeHost are egress's, named here for the
// callers that configure a network.
var (
	Presets       = egress.Presets
	PresetNames   = egress.PresetNames
	NormalizeHost = egress.NormalizeHost
)
