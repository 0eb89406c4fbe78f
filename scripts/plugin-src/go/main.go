// Command main is a stand-in Velero plugin: it imports Velero's plugin framework (a local
// stub) so that its Go build info records the Velero version it was built against.
package main

import "github.com/vmware-tanzu/velero/pkg/plugin/framework"

// name is set with -ldflags -X by mkplugins.sh, so that each build says which plugin it is.
var name = "unnamed"

func main() {
	framework.NewServer(name).Serve()
}
