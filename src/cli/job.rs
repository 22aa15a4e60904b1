//! Where the options of a run come from: a job file (`batchinfer run JOB.toml`),
//! environment variables (`BATCHINFER_<FLAG>`), and the command line, in rising
//! precedence. Every layer is turned into the arguments of `batchinfer score`, and
//! an option given in a higher layer drops it from the lower ones, so clap parses
//! one consistent command line and its checks apply to all three sources.
//!
//! Job-file keys and variable names are the long flag names of `score` (`-` or `_`);
//! lists are TOML arrays; `true` turns a switch on. Unknown keys are errors that name
//! the key. Relative paths in a job file are relative to the file's directory.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;

/// Prefix of the environment variables read.
pub const ENV_PREFIX: &str = "BATCHINFER_";

/// Options of `score` that take a path: relative ones in a job file are resolved
/// against the job file's directory.
const PATH_KEYS: &[&str] = &[
    "model",
    "input",
    "output",
    "errors",
    "summary-json",
    "baseline",
];

/// The long options of `score`: name → takes a value.
fn score_options() -> BTreeMap<String, bool> {
    let cmd = Cli::command();
    let score = cmd.find_subcommand("score").expect("score is a subcommand");
    score
        .get_arguments()
        .filter_map(|a| {
            a.get_long()
                .map(|l| (l.to_string(), a.get_action().takes_values()))
        })
        .filter(|(l, _)| l != "help" && l != JOB_FILE_FLAG)
        .collect()
}

/// The hidden flag `batchinfer run` passes the job file's path with, so that a run
/// can refuse to write over it. Not a job-file key or an environment variable.
pub const JOB_FILE_FLAG: &str = "job-file";

/// Short flag → long name.
fn score_shorts() -> BTreeMap<char, String> {
    let cmd = Cli::command();
    let score = cmd.find_subcommand("score").expect("score is a subcommand");
    score
        .get_arguments()
        .filter_map(|a| Some((a.get_short()?, a.get_long()?.to_string())))
        .collect()
}

/// Option values by long name, one layer of configuration.
pub type Layer = BTreeMap<String, Vec<String>>;

fn key_name(raw: &str) -> String {
    raw.replace('_', "-")
}

/// Reads a job file into a layer.
pub fn read_job_file(path: &Path) -> Result<Layer> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read job file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("job file {} is not valid TOML", path.display()))?;
    let options = score_options();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut layer = Layer::new();
    for (raw_key, value) in table {
        let key = key_name(&raw_key);
        if let (true, Some(tables)) = (key == "model", model_tables(&value)) {
            for (i, table) in tables.iter().enumerate() {
                model_table(table, &base, &mut layer).with_context(|| {
                    format!("job file {}: [[model]] table {}", path.display(), i + 1)
                })?;
            }
            continue;
        }
        let Some(&takes_value) = options.get(&key) else {
            bail!(
                "job file {}: unknown key `{raw_key}`; keys are the long options of `batchinfer score`: {}",
                path.display(),
                options.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        let values = toml_values(&value)
            .with_context(|| format!("job file {}: key `{raw_key}`", path.display()))?;
        if !takes_value {
            match values.as_slice() {
                [v] if v == "true" => layer.insert(key, vec![]),
                [v] if v == "false" => continue,
                _ => bail!(
                    "job file {}: key `{raw_key}` is a switch: true or false",
                    path.display()
                ),
            };
            continue;
        }
        let values = if PATH_KEYS.contains(&key.as_str()) {
            values.into_iter().map(|v| resolve(&base, &v)).collect()
        } else {
            values
        };
        layer.insert(key, values);
    }
    Ok(layer)
}

/// `[[model]]` tables (or one `[model]` table); None when `model` is a path.
fn model_tables(value: &toml::Value) -> Option<Vec<&toml::Table>> {
    match value {
        toml::Value::Table(t) => Some(vec![t]),
        toml::Value::Array(items) if items.iter().all(|v| v.is_table()) && !items.is_empty() => {
            Some(items.iter().filter_map(|v| v.as_table()).collect())
        }
        _ => None,
    }
}

/// Layer keys for values that come from a `[[model]]` table: they are passed as
/// the option after the dot, and dropped when a higher layer sets that option or
/// `model`, since they belong to the file's models.
const MODEL_SCOPED: &str = "model.";

/// One `[[model]]` table (`name`, `path`, `features`, `input_map`,
/// `select_outputs`, `as_list`) as the options `--model NAME=PATH`,
/// `--features NAME:cols`, `--input-map NAME:INPUT=cols` and so on.
fn model_table(table: &toml::Table, base: &Path, layer: &mut Layer) -> Result<()> {
    let mut name = None;
    let mut path = None;
    let mut features = vec![];
    let mut input_map = vec![];
    let mut lists = vec![];
    for (raw_key, value) in table {
        match key_name(raw_key).as_str() {
            "name" => name = Some(one_string(value).context("key `name`")?),
            "path" => path = Some(resolve(base, &one_string(value).context("key `path`")?)),
            "features" => features = toml_values(value).context("key `features`")?,
            key @ ("select-outputs" | "as-list") => {
                let values = toml_values(value).with_context(|| format!("key `{raw_key}`"))?;
                lists.push((key.to_string(), values));
            }
            "input-map" => match value {
                toml::Value::Table(t) => {
                    for (input, cols) in t {
                        let cols = toml_values(cols)
                            .with_context(|| format!("key `input_map.{input}`"))?;
                        input_map.push(format!("{input}={}", cols.join(",")));
                    }
                }
                other => input_map = toml_values(other).context("key `input_map`")?,
            },
            _ => bail!(
                "unknown key `{raw_key}`; a model table has name, path, features, input_map, select_outputs and as_list"
            ),
        }
    }
    let path = path.context("no `path`: give the model file, path = \"model.onnx\"")?;
    let scope = name.as_ref().map(|n| format!("{n}:")).unwrap_or_default();
    let model = match &name {
        Some(n) => format!("{n}={path}"),
        None => path,
    };
    layer.entry("model".into()).or_default().push(model);
    if !features.is_empty() {
        layer
            .entry(format!("{MODEL_SCOPED}features"))
            .or_default()
            .push(format!("{scope}{}", features.join(",")));
    }
    for (key, values) in lists {
        layer
            .entry(format!("{MODEL_SCOPED}{key}"))
            .or_default()
            .push(format!("{scope}{}", values.join(",")));
    }
    for item in input_map {
        layer
            .entry(format!("{MODEL_SCOPED}input-map"))
            .or_default()
            .push(format!("{scope}{item}"));
    }
    Ok(())
}

fn one_string(value: &toml::Value) -> Result<String> {
    match value.as_str() {
        Some(s) => Ok(s.to_string()),
        None => bail!("expected a string, found {}", value.type_str()),
    }
}

fn toml_values(value: &toml::Value) -> Result<Vec<String>> {
    Ok(match value {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Integer(i) => vec![i.to_string()],
        toml::Value::Float(f) => vec![f.to_string()],
        toml::Value::Boolean(b) => vec![b.to_string()],
        toml::Value::Array(items) => items
            .iter()
            .map(|v| toml_values(v).map(|mut v| v.remove(0)))
            .collect::<Result<_>>()?,
        other => bail!(
            "expected a string, number, boolean or array, found {}",
            other.type_str()
        ),
    })
}

/// A path relative to `base`, unless absolute, a URL (`s3://…`), `-` or empty base.
fn resolve(base: &Path, value: &str) -> String {
    let p = Path::new(value);
    let url = |v: &str| {
        crate::storage::is_url(v)
            || v.split_once('=')
                .is_some_and(|(_, u)| crate::storage::is_url(u))
    };
    if value == "-" || p.is_absolute() || url(value) || base.as_os_str().is_empty() {
        value.to_string()
    } else {
        base.join(p).display().to_string()
    }
}

/// The options set through `BATCHINFER_<FLAG>` variables. Variables that name no
/// option are left alone (other tools share the prefix).
pub fn env_layer(vars: impl Iterator<Item = (String, String)>) -> Result<Layer> {
    let options = score_options();
    let mut layer = Layer::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = key_name(&rest.to_ascii_lowercase());
        let Some(&takes_value) = options.get(&key) else {
            continue;
        };
        if takes_value {
            layer.insert(key, vec![value]);
        } else {
            match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => {
                    layer.insert(key, vec![]);
                }
                "0" | "false" | "no" | "" => {}
                other => bail!("{name}={other}: expected true or false"),
            }
        }
    }
    Ok(layer)
}

/// Long names of the options given in command-line arguments.
fn cli_keys(args: &[OsString]) -> Vec<String> {
    let shorts = score_shorts();
    let mut keys = vec![];
    for a in args {
        let Some(a) = a.to_str() else { continue };
        if let Some(long) = a.strip_prefix("--") {
            keys.push(long.split('=').next().unwrap_or_default().to_string());
        } else if let Some(short) = a.strip_prefix('-').and_then(|s| s.chars().next()) {
            if let Some(long) = shorts.get(&short) {
                keys.push(long.clone());
            }
        }
    }
    keys
}

fn layer_args(layer: &Layer, skip: &[String]) -> Vec<OsString> {
    let mut args = vec![];
    for (key, values) in layer {
        let (key, dropped) = match key.strip_prefix(MODEL_SCOPED) {
            Some(option) => (option, skip.iter().any(|s| s == option || s == "model")),
            None => (key.as_str(), skip.contains(key)),
        };
        if dropped {
            continue;
        }
        if values.is_empty() {
            args.push(OsString::from(format!("--{key}")));
        }
        for v in values {
            // `--key=value` keeps values that start with '-' from reading as flags.
            args.push(OsString::from(format!("--{key}={v}")));
        }
    }
    args
}

/// The arguments of `batchinfer score`: the job file's options, then the
/// environment's, then the command line's, each dropping what a later one sets.
pub fn score_args(job: Option<&Layer>, env: &Layer, cli: &[OsString]) -> Vec<OsString> {
    let given = cli_keys(cli);
    let env_keys: Vec<String> = env.keys().cloned().collect();
    let mut args: Vec<OsString> = vec!["batchinfer".into(), "score".into()];
    if let Some(job) = job {
        let skip: Vec<String> = given.iter().chain(&env_keys).cloned().collect();
        args.extend(layer_args(job, &skip));
    }
    args.extend(layer_args(env, &given));
    args.extend(cli.iter().cloned());
    args
}

/// Replaces `{date}`, `{yyyy}`, `{mm}` and `{dd}` in a path with the run date.
pub fn expand_date(template: &str, date: &RunDate) -> String {
    template
        .replace(
            "{date}",
            &format!("{:04}-{:02}-{:02}", date.year, date.month, date.day),
        )
        .replace("{yyyy}", &format!("{:04}", date.year))
        .replace("{mm}", &format!("{:02}", date.month))
        .replace("{dd}", &format!("{:02}", date.day))
}

/// The date a run is for (`--date`, default today in UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunDate {
    pub year: u32,
    pub month: u32,
    pub day: u32,
}

impl RunDate {
    pub fn parse(s: &str) -> Result<RunDate> {
        let parts: Vec<&str> = s.split('-').collect();
        let bad = || anyhow::anyhow!("--date {s:?}: expected YYYY-MM-DD");
        let [y, m, d] = parts.as_slice() else {
            return Err(bad());
        };
        let (year, month, day): (u32, u32, u32) = (
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            d.parse().map_err(|_| bad())?,
        );
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if y.len() != 4 || !(1..=12).contains(&month) || day == 0 || day > days[month as usize - 1]
        {
            return Err(bad());
        }
        Ok(RunDate { year, month, day })
    }

    pub fn today() -> RunDate {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        RunDate::parse(&now[..10]).expect("RFC 3339 starts with YYYY-MM-DD")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(pairs: &[(&str, &[&str])]) -> Layer {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn args(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn flag_beats_environment_beats_file() {
        let job = layer(&[
            ("threads", &["1"]),
            ("batch-size", &["100"]),
            ("keep", &["id", "ts"]),
            ("output", &["f.parquet"]),
        ]);
        let env = env_layer(
            [
                ("BATCHINFER_THREADS".to_string(), "3".to_string()),
                ("BATCHINFER_CI_TARGET".into(), "x".into()),
            ]
            .into_iter(),
        )
        .unwrap();
        let cli: Vec<OsString> = vec!["-o".into(), "cli.parquet".into(), "--batch-size=7".into()];
        let a = args(score_args(Some(&job), &env, &cli));
        assert_eq!(
            a,
            [
                "batchinfer",
                "score",
                "--keep=id",
                "--keep=ts",
                "--threads=3",
                "-o",
                "cli.parquet",
                "--batch-size=7"
            ]
        );
    }

    #[test]
    fn switches_from_environment() {
        let env = env_layer(
            [
                ("BATCHINFER_OVERWRITE".to_string(), "true".to_string()),
                ("BATCHINFER_QUIET".into(), "0".into()),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(env.get("overwrite"), Some(&vec![]));
        assert!(!env.contains_key("quiet"));
        assert!(
            env_layer([("BATCHINFER_OVERWRITE".to_string(), "maybe".to_string())].into_iter())
                .is_err()
        );
    }

    #[test]
    fn dates_expand_and_are_checked() {
        let d = RunDate::parse("2024-02-29").unwrap();
        assert_eq!(
            expand_date("s3/{yyyy}/{mm}/{dd}/x-{date}.parquet", &d),
            "s3/2024/02/29/x-2024-02-29.parquet"
        );
        assert!(RunDate::parse("2023-02-29").is_err());
        assert!(RunDate::parse("2024-13-01").is_err());
        assert!(RunDate::parse("24-01-01").is_err());
        let today = RunDate::today();
        assert!(today.year >= 2024);
    }
}
