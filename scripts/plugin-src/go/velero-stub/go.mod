// A stand-in for github.com/vmware-tanzu/velero: just the package a plugin's main imports,
// so that lab plugins record a real Velero requirement in their Go build info while building
// offline. mkplugins.sh points each plugin's go.mod at it with a replace directive.
module github.com/vmware-tanzu/velero

go 1.19
