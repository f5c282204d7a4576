//! Logging for the short-lived plugins: stderr, or the config's `logFile`, never stdout.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use log::{LevelFilter, Log, Metadata, Record};

struct Logger {
    sink: Mutex<Option<File>>,
    level: LevelFilter,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "jalur[{}] {}: {}\n",
            std::process::id(),
            record.level(),
            record.args()
        );
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        match sink.as_mut() {
            Some(file) => {
                let _ = file.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// Sets the logger up from the config's `logFile` and `logLevel` (read leniently: a config
/// that does not parse still gets its error logged to stderr).
pub fn init(stdin: &[u8]) {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct LogConf {
        log_file: Option<std::path::PathBuf>,
        log_level: Option<String>,
    }
    // Only from a JSON object: serde would read a struct from an array too, and take the
    // first string of `["1.1.0", …]` for a log file to create.
    let conf: LogConf = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .filter(serde_json::Value::is_object)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let level = match conf.log_level.as_deref() {
        Some("debug") => LevelFilter::Debug,
        Some("warn") => LevelFilter::Warn,
        Some("error") => LevelFilter::Error,
        _ => LevelFilter::Info,
    };
    let file = conf
        .log_file
        .and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
    let logger = Box::new(Logger {
        sink: Mutex::new(file),
        level,
    });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
