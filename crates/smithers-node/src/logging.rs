//! The one place logs are set up. `SMITHERS_LOG` (an env-filter: `debug`, `info`,
//! `smithers_core::decision=debug`, `warn,smithers_core=debug`, …) turns on the core's
//! `tracing` events; unset, no subscriber is installed and every log point costs one check of
//! a static level. Lines go to stderr, or are appended to `SMITHERS_LOG_FILE`; text by default,
//! JSON lines with `SMITHERS_LOG_FORMAT=json`. The JS layer (npm/smithers-rs/src/log.js) reads
//! the same variables and writes the same format, so one file holds both in time order.

use std::fs::OpenOptions;
use std::sync::{Mutex, Once};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

static INIT: Once = Once::new();

/// Installs the subscriber the first time it is called, if `SMITHERS_LOG` asks for logs.
pub fn init() {
    INIT.call_once(|| {
        let spec = std::env::var("SMITHERS_LOG").unwrap_or_default();
        if spec.trim().is_empty() {
            return;
        }
        if let Err(message) = install(&spec) {
            eprintln!("smithers: {message}; logs of the native engine are off");
        }
    });
}

fn install(spec: &str) -> Result<(), String> {
    let filter = EnvFilter::builder()
        .parse(spec)
        .map_err(|e| format!("SMITHERS_LOG={spec:?} is not a log filter ({e})"))?;
    let json = match std::env::var("SMITHERS_LOG_FORMAT").as_deref() {
        Err(_) | Ok("") | Ok("text") => false,
        Ok("json") => true,
        Ok(other) => {
            return Err(format!(
                "SMITHERS_LOG_FORMAT={other:?} is neither \"text\" nor \"json\""
            ));
        }
    };
    let writer = match std::env::var_os("SMITHERS_LOG_FILE").filter(|p| !p.is_empty()) {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("SMITHERS_LOG_FILE={path:?} cannot be opened ({e})"))?;
            BoxMakeWriter::new(Mutex::new(file))
        }
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(true)
        .with_writer(writer);
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|e| format!("cannot install the log subscriber ({e})"))
}
