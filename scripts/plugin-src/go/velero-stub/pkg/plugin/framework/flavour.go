package framework

// Flavour tells the stub apart from the fork made from it (mkplugins.sh rewrites it there).
const Flavour = "velero-stub"
