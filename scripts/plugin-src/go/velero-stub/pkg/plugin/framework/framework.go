// Package framework stands in for Velero's plugin framework in the lab's plugin builds.
package framework

import "fmt"

// Server mimics the shape of Velero's plugin server; it serves nothing.
type Server struct{ name string }

// NewServer returns a server for the plugin NAME.
func NewServer(name string) *Server { return &Server{name: name} }

// Serve prints which stand-in this is and returns, so the binary exits 0.
func (s *Server) Serve() {
	fmt.Printf("velero-airgap lab plugin %s (stub Velero %s)\n", s.name, Flavour)
}
