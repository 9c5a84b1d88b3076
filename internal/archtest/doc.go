// Package archtest holds the test that keeps bcctl's layers honest: every
// package of the module has a place in the layer table of layers_test.go,
// and may import only packages of lower layers (or of its own room), as
// docs/architecture.md draws them. Public packages depend on nothing of
// internal/, cobra or bubbletea, and the heavy libraries stay in the rooms
// that own them (cobra in the commands, bubbletea in the TUI, protocompile
// and protoreflect in internal/dynamic).
//
// The package has no code of its own; `go test ./...` runs its test.
package archtest
