//! `velero-airgap build`: resolve, pull and write the bundle, drawing the
//! library's progress events as indicatif bars on a terminal and as plain lines
//! elsewhere.

use super::{ExitStatus, Interrupted, Output};
use crate::cli::{BuildArgs, RegistryArgs};
use crate::commands::render::proxy_settings;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;
use velero_airgap::build::{self, BuildRequest, Event};
use velero_airgap::registry::{Mirror, PlatformSelection, RegistryOptions};
use velero_airgap::release;

/// The registry flags as library options.
pub fn registry_options(args: &RegistryArgs) -> anyhow::Result<RegistryOptions> {
    Ok(RegistryOptions {
        mirrors: args
            .mirror
            .iter()
            .map(|m| Mirror::parse(m))
            .collect::<Result<_, _>>()?,
        insecure: args.insecure_registry.clone(),
        ca_files: args.ca_file.clone(),
        docker_config: args.docker_config.clone(),
        retries: args.retries,
    })
}

/// Runs `build`.
pub fn run(args: BuildArgs, output: Output) -> anyhow::Result<ExitStatus> {
    let request = BuildRequest {
        config: args.config.config.clone(),
        release: release::select(args.config.velero_version.as_deref())?,
        proxy: proxy_settings(&args.install),
        host_ca_bundle: args.install.host_ca_bundle.clone(),
        platforms: PlatformSelection::parse(&args.platform)?,
        registry: registry_options(&args.registry)?,
        jobs: args.registry.jobs.max(1),
        cache_dir: args.cache_dir.clone(),
        allow_secrets: args.allow_secrets,
        output: args.output.clone(),
    };
    let display = Display::new(output, args.json);
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let on_event = |event| display.event(event);
    let summary = runtime.block_on(async {
        tokio::select! {
            result = build::build(request, &on_event) => result.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Err(anyhow::Error::from(Interrupted)),
        }
    });
    display.finish();
    let summary = summary?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut report = serde_json::to_value(&summary)?;
        report["seconds"] = serde_json::json!((seconds * 1000.0).round() / 1000.0);
        super::write_output(None, format!("{report:#}\n").as_bytes())?;
    } else if !output.quiet {
        eprintln!(
            "wrote {}: {} images, {} blobs ({} fetched, {} from cache), {} in {:.1} s\nsha256 {}",
            summary.bundle.display(),
            summary.images,
            summary.blobs,
            summary.blobs_fetched,
            summary.blobs_cached,
            human_bytes(summary.bytes),
            seconds,
            summary.sha256,
        );
    }
    Ok(ExitStatus::Success)
}

/// Draws progress: bars on a terminal, lines otherwise, nothing with `-q` or
/// `--json`.
struct Display {
    mode: DisplayMode,
    bytes: Option<ProgressBar>,
    multi: Option<MultiProgress>,
    lines: Mutex<()>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DisplayMode {
    Silent,
    Lines,
    Bars,
}

impl Display {
    fn new(output: Output, json: bool) -> Display {
        let mode = if output.quiet || json {
            DisplayMode::Silent
        } else if std::io::stderr().is_terminal() {
            DisplayMode::Bars
        } else {
            DisplayMode::Lines
        };
        let (multi, bytes) = if mode == DisplayMode::Bars {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message("resolving");
            (Some(multi), Some(bar))
        } else {
            (None, None)
        };
        Display {
            mode,
            bytes,
            multi,
            lines: Mutex::new(()),
        }
    }

    fn line(&self, text: String) {
        match (&self.mode, &self.multi) {
            (DisplayMode::Bars, Some(multi)) => {
                let _ = multi.println(text);
            }
            (DisplayMode::Lines, _) => {
                let _guard = self.lines.lock();
                eprintln!("{text}");
            }
            _ => {}
        }
    }

    fn event(&self, event: Event) {
        if self.mode == DisplayMode::Silent {
            return;
        }
        match event {
            Event::Resolved {
                reference,
                digest,
                blobs,
                bytes,
            } => self.line(format!(
                "resolved {reference} ({digest}, {blobs} blobs, {})",
                human_bytes(bytes)
            )),
            Event::Planned {
                images,
                blobs,
                bytes,
                cached,
            } => {
                if let Some(bar) = &self.bytes {
                    bar.set_length(bytes);
                    bar.set_message("pulling");
                }
                self.line(format!(
                    "pulling {images} images: {blobs} blobs, {} ({cached} cached)",
                    human_bytes(bytes)
                ));
            }
            Event::BlobProgress { bytes } => {
                if let Some(bar) = &self.bytes {
                    bar.inc(bytes);
                }
            }
            Event::ImagePulled { reference } => self.line(format!("pulled {reference}")),
            Event::Finishing => {
                if let Some(bar) = &self.bytes {
                    bar.set_message("writing");
                }
                self.line("writing bundle".to_string());
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bytes {
            bar.finish_and_clear();
        }
    }
}

/// Sizes as people read them (MB = 10^6 bytes, as registries report).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
