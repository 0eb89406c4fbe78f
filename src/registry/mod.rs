//! Talking to OCI registries: resolving references, pulling manifests and blobs.
