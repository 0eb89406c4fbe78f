//! `validate --online`: every image the values need, resolved without pulling
//! its layers, with its platforms and (given keys) its signature checked.

use super::signatures::image_signature;
use super::{BuildError, BuildRequest, Resolved, render};
use crate::config::ClusterConfig;
use crate::registry::Registry;
use crate::sign::SignatureStatus;
use futures::StreamExt;
use serde::Serialize;

/// One image as `validate --online` saw it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnlineResult {
    /// Canonical reference.
    pub reference: String,
    /// What it is for.
    pub role: String,
    /// Whether it resolved, has the platforms and (with keys) a valid signature.
    pub ok: bool,
    /// The digest the bundle would carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Where it was looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Signature status, when keys were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureStatus>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `validate --online`: resolves every image the values need (manifests only,
/// no layers), checks the requested platforms and, with keys, the signatures.
/// Per-image failures are results, not errors.
pub async fn check_online(request: &BuildRequest) -> Result<Vec<OnlineResult>, BuildError> {
    let config = ClusterConfig::load(&request.config)?;
    let rendered = render(&config, request)?;
    let registry = Registry::new(request.registry.clone())?;
    let policy = &request.signatures;
    let results = futures::stream::iter(rendered.distinct_images())
        .map(|(reference, role)| {
            let registry = &registry;
            async move {
                let reference = reference.to_string();
                let outcome = async {
                    let image = registry.resolve(&reference, &request.platforms).await?;
                    let resolved = Resolved {
                        role: role.clone(),
                        image,
                        signatures: vec![],
                        signature: SignatureStatus::Unsigned,
                    };
                    let signature = if policy.checks() {
                        Some(image_signature(registry, &resolved, policy).await?.1)
                    } else {
                        None
                    };
                    Ok::<_, BuildError>((resolved, signature))
                }
                .await;
                match outcome {
                    Ok((resolved, signature)) => OnlineResult {
                        reference,
                        role: role.to_string(),
                        ok: true,
                        digest: Some(resolved.image.top.digest.clone()),
                        source: Some(resolved.image.source.clone()),
                        signature,
                        error: None,
                    },
                    Err(err) => OnlineResult {
                        reference,
                        role: role.to_string(),
                        ok: false,
                        digest: None,
                        source: None,
                        signature: None,
                        error: Some(err.to_string()),
                    },
                }
            }
        })
        .buffered(request.jobs)
        .collect()
        .await;
    Ok(results)
}
