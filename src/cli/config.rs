//! Parsed arguments turned, once, into checked settings. Defaults live here.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cli::job::{expand_date, RunDate};
use crate::cli::{CsvArgs, MappingArgs, ScoreArgs, SelectArgs};
use crate::mapping::MappingRequest;
use crate::pipeline::rejects::{MaxErrors, OnError};
use crate::select::{SelectSpec, TransformSpec};
use crate::sink::shard::Shard;
use crate::sink::{OutputKind, OutputTarget};
use crate::source::{expand_inputs, CsvOptions, InputFile};

/// Rows per batch. Measured on 2 cores: splitting batches below ~1,024 rows across threads
/// wastes CPU, and tract's throughput per model family is flat from 1,024 to 8,192
/// rows; 8,192 rows of 30 float32 features (1 MiB) keep a batch in L2 while giving
/// each of 2 workers many tasks on inputs of 100k rows and up.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// Where the text summary goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryTo {
    Stderr,
    Stdout,
    Nowhere,
}

/// Settings of a scoring run.
#[derive(Debug)]
pub struct ScoreConfig {
    pub models: Vec<ModelSpec>,
    pub inputs: Vec<InputFile>,
    pub csv: CsvOptions,
    pub output: OutputTarget,
    pub on_error: OnError,
    /// With `--on-error skip`: the error file.
    pub errors: Option<OutputTarget>,
    pub batch_size: usize,
    pub threads: usize,
    pub price_per_hour: Option<f64>,
    pub summary_json: Option<PathBuf>,
    pub summary: SummaryTo,
    pub quiet: bool,
    /// Time between progress lines in logs.
    pub progress_every: std::time::Duration,
    /// Stop after the checks, before scoring.
    pub check: bool,
    /// Directory outputs: this run's shard, whether to resume, and the part size cap.
    pub shard: Shard,
    pub resume: bool,
    pub rows_per_file: Option<u64>,
    /// Filters, derived columns, sample and limit.
    pub select: SelectSpec,
    /// The job file of `batchinfer run`, read by this run.
    pub job_file: Option<PathBuf>,
    /// `--baseline`, `--max-drift`, `--on-drift`.
    pub drift: DriftOptions,
}

/// What a run is held to.
#[derive(Debug, Clone)]
pub struct DriftOptions {
    pub baseline: Option<PathBuf>,
    pub thresholds: crate::profile::drift::Thresholds,
    pub on_drift: crate::profile::drift::OnDrift,
    /// Profile the run (not with `--no-profile`).
    pub profile: bool,
}

/// `--max-drift` and `--on-drift` take effect with a baseline only.
fn drift_options(args: &ScoreArgs, dated: &dyn Fn(&str) -> String) -> Result<DriftOptions> {
    use crate::profile::drift::{OnDrift, Thresholds};
    let thresholds = Thresholds::parse(&args.max_drift)?;
    let on_drift = match &args.on_drift {
        Some(s) => OnDrift::parse(s)?,
        None => OnDrift::Fail,
    };
    if args.baseline.is_none() && (!args.max_drift.is_empty() || args.on_drift.is_some()) {
        bail!("--max-drift and --on-drift compare a run with a baseline: pass --baseline PATH (a file `batchinfer profile` wrote, or an earlier run's --summary-json)");
    }
    if args.no_profile && args.baseline.is_some() {
        bail!("--no-profile turns off the profile that --baseline compares with the baseline: pass one or the other");
    }
    Ok(DriftOptions {
        baseline: args
            .baseline
            .as_ref()
            .map(|p| PathBuf::from(dated(&p.display().to_string()))),
        thresholds,
        on_drift,
        profile: !args.no_profile,
    })
}

/// The selection options, with `{date}` templates expanded in the SQL.
pub fn select_spec(args: &SelectArgs, dated: &dyn Fn(&str) -> String) -> Result<SelectSpec> {
    let with = args
        .with
        .iter()
        .map(|w| match w.split_once('=') {
            Some((name, expr)) if !name.trim().is_empty() && !expr.trim().is_empty() => {
                Ok((name.trim().to_owned(), dated(expr)))
            }
            _ => bail!("--with {w:?}: expected NAME=EXPR, e.g. log_amount=log1p(amount)"),
        })
        .collect::<Result<_>>()?;
    let spec = SelectSpec {
        transform: TransformSpec {
            with,
            filter: args.filter.as_deref().map(dated),
            sql: args.sql.as_deref().map(dated),
        },
        sample: args.sample,
        seed: args.seed,
        limit: args.limit,
    };
    // Checked now, so that bad SQL is a usage error before anything is opened.
    crate::select::Selection::new(&spec)?;
    Ok(spec)
}

fn one_byte(what: &str, s: &str) -> Result<u8> {
    let s = if s == "\\t" { "\t" } else { s };
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => bail!("--{what} must be one byte, got {s:?}"),
    }
}

pub fn csv_options(args: &CsvArgs) -> Result<CsvOptions> {
    let nulls: Vec<String> = args.null_values.split(',').map(str::to_owned).collect();
    let delimiter = args
        .delimiter
        .as_deref()
        .map(|d| one_byte("delimiter", d))
        .transpose()?;
    let types = args
        .column_type
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (name, ty) = t.split_once('=').with_context(|| {
                format!("--column-type {t:?}: expected NAME=TYPE, e.g. amount=float64")
            })?;
            Ok((
                name.to_owned(),
                crate::source::parse_type(ty).with_context(|| format!("--column-type {t:?}"))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(
        CsvOptions::new(delimiter, one_byte("quote", &args.quote)?, &nulls)?
            .with_infer_rows(args.infer_rows.unwrap_or(crate::source::DEFAULT_INFER_ROWS))
            .with_types(types),
    )
}

/// One model of a run: its name (several models, or `--model NAME=PATH`), its
/// file, and how the input's columns feed it.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: Option<String>,
    pub path: PathBuf,
    pub mapping: MappingRequest,
    /// Outputs to write (None: all).
    pub outputs: Option<Vec<String>>,
    /// Outputs written as one list column each.
    pub as_list: Vec<String>,
    /// How a native model is scored (`--raw-score`, `--iterations`).
    pub native: crate::model::native::Options,
}

/// A model name: it prefixes column names, so letters, digits, `_` and `-`.
fn is_model_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Splits `MODEL:rest` when MODEL is one of `names`; otherwise the value is for every model.
fn scoped<'a>(value: &'a str, names: &[&str]) -> (Option<&'a str>, &'a str) {
    match value.split_once(':') {
        Some((m, rest)) if names.contains(&m) => (Some(m), rest),
        _ => (None, value),
    }
}

fn input_map_item(item: &str) -> Result<(String, Vec<String>)> {
    let (name, cols) = item
        .split_once('=')
        .with_context(|| format!("--input-map {item:?}: expected NAME=col1,col2"))?;
    let cols: Vec<String> = cols
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    if name.is_empty() || cols.is_empty() {
        bail!("--input-map {item:?}: expected NAME=col1,col2");
    }
    Ok((name.to_owned(), cols))
}

/// The values of a `[MODEL:]…` option, parsed and split by model.
struct ByModel<T> {
    /// Each model's own values (prefixed with its name).
    own: Vec<Vec<T>>,
    /// Unprefixed values: for every model that has none of its own.
    shared: Vec<T>,
}

impl<T: Clone> ByModel<T> {
    fn split(
        values: &[String],
        names: &[&str],
        parse: impl Fn(&str) -> Result<Vec<T>>,
    ) -> Result<ByModel<T>> {
        let mut by = ByModel {
            own: vec![vec![]; names.len().max(1)],
            shared: vec![],
        };
        for value in values {
            let (model, rest) = scoped(value, names);
            let target = match model.and_then(|m| names.iter().position(|n| *n == m)) {
                Some(i) => &mut by.own[i],
                None => &mut by.shared,
            };
            target.extend(parse(rest)?);
        }
        Ok(by)
    }

    /// Model `i`'s values: its own, or the shared ones unless `has_own`.
    fn for_model(&self, i: usize, has_own: bool) -> Vec<T> {
        if has_own {
            self.own[i].clone()
        } else {
            self.shared.clone()
        }
    }
}

/// `a,b,c` as items, empty ones dropped.
fn comma_items(s: &str) -> Result<Vec<String>> {
    Ok(s.split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The models of a run from `--model [NAME=]PATH` values and the mapping options.
/// `--features` and `--input-map` values prefixed `MODEL:` are for that model; the
/// others are for every model that has no mapping of its own.
pub fn model_specs(models: &[String], args: &MappingArgs) -> Result<Vec<ModelSpec>> {
    let mut specs: Vec<ModelSpec> = vec![];
    for value in models {
        let (name, path) = match value.split_once('=') {
            Some((n, p)) if is_model_name(n) && !p.is_empty() => (Some(n.to_owned()), p),
            _ => (None, value.as_str()),
        };
        if path.is_empty() {
            bail!("--model needs a path to an ONNX file");
        }
        if let Some(n) = &name {
            if specs.iter().any(|s| s.name.as_ref() == Some(n)) {
                bail!(
                    "--model {value}: the name `{n}` is given twice; each model needs its own name"
                );
            }
        }
        specs.push(ModelSpec {
            name,
            path: PathBuf::from(path),
            mapping: MappingRequest::default(),
            outputs: None,
            as_list: vec![],
            native: Default::default(),
        });
    }
    if specs.len() > 1 {
        if let Some(unnamed) = specs.iter().find(|s| s.name.is_none()) {
            bail!(
                "with several models each needs a name, which prefixes its output columns: --model NAME={}",
                unnamed.path.display()
            );
        }
    }
    let names: Vec<String> = specs.iter().filter_map(|s| s.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let features = ByModel::split(&args.features, &names, comma_items)?;
    let input_map = ByModel::split(&args.input_map, &names, |item| {
        input_map_item(item).map(|pair| vec![pair])
    })?;
    let select = ByModel::split(&args.select_outputs, &names, comma_items)?;
    let as_list = ByModel::split(&args.as_list, &names, comma_items)?;
    // A column kept twice (--keep id --keep id,ts) is written once.
    let mut keep: Vec<String> = vec![];
    for k in &args.keep {
        if !keep.contains(k) {
            keep.push(k.clone());
        }
    }
    for (i, spec) in specs.iter_mut().enumerate() {
        // A model's own mapping (features or input map) replaces the shared one.
        let own_mapping = !features.own[i].is_empty() || !input_map.own[i].is_empty();
        let (features, input_map) = (
            features.for_model(i, own_mapping),
            input_map.for_model(i, own_mapping),
        );
        if !features.is_empty() && !input_map.is_empty() {
            let whose = spec
                .name
                .as_ref()
                .map(|n| format!(" for model {n}"))
                .unwrap_or_default();
            bail!("--features and --input-map are both given{whose}; use one: --features for a model with one [N, F] input, --input-map for named inputs");
        }
        let select = select.for_model(i, !select.own[i].is_empty());
        spec.outputs = (!select.is_empty()).then_some(select);
        spec.as_list = as_list.for_model(i, !as_list.own[i].is_empty());
        spec.native = crate::model::native::Options {
            raw_score: args.raw_score,
            iterations: args.iterations.unwrap_or_default(),
        };
        spec.mapping = MappingRequest {
            features: (!features.is_empty()).then_some(features),
            input_map,
            keep: keep.clone(),
            keep_all: args.keep_all,
        };
    }
    Ok(specs)
}

/// `--threads` and `--batch-size`, with their defaults.
/// The object-storage options (defaults in `storage::Settings`).
fn storage_settings(args: &ScoreArgs) -> Result<crate::storage::Settings> {
    let mut s = crate::storage::Settings::default();
    if let Some(n) = args.store_retries {
        s.retries.max_retries = n;
    }
    if let Some(secs) = args.store_timeout {
        if !(secs.is_finite() && secs > 0.0) {
            bail!("--store-timeout must be a positive number of seconds");
        }
        s.retries.timeout = std::time::Duration::from_secs_f64(secs);
    }
    if let Some(mib) = args.read_ahead {
        s.read_ahead = mib.max(1) << 20;
    }
    if let Some(secs) = args.lock_lease {
        if secs < 3 {
            bail!("--lock-lease must be at least 3 seconds (it is renewed every third of it)");
        }
        s.lease = std::time::Duration::from_secs(secs);
    }
    Ok(s)
}

fn performance(args: &ScoreArgs) -> Result<(usize, usize)> {
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    let batch_size = match args.batch_size {
        Some(0) => bail!("--batch-size must be at least 1"),
        Some(n) => n,
        None => DEFAULT_BATCH_SIZE,
    };
    Ok((threads, batch_size))
}

/// `--on-error`, `--max-errors` and the error file (`--errors`, or its default
/// beside a file output).
fn bad_rows(
    args: &ScoreArgs,
    output: &OutputTarget,
    dated: &dyn Fn(&str) -> String,
) -> Result<(OnError, Option<OutputTarget>)> {
    let on_error = match args.on_error.as_str() {
        "skip" => OnError::Skip {
            max: args
                .max_errors
                .as_deref()
                .map(MaxErrors::parse)
                .transpose()?,
        },
        _ => {
            if args.max_errors.is_some() || args.errors.is_some() {
                bail!("--max-errors and --errors go with --on-error skip");
            }
            OnError::Fail
        }
    };
    let errors = match (&on_error, &args.errors) {
        (OnError::Fail, _) => None,
        (OnError::Skip { .. }, Some(path)) => {
            Some(OutputTarget::parse(&dated(path), args.overwrite)?)
        }
        (OnError::Skip { .. }, None) if output.kind == crate::sink::OutputKind::Stdout => {
            bail!("--on-error skip with --output - needs --errors PATH for the rejected rows")
        }
        (OnError::Skip { .. }, None) if output.kind == OutputKind::Directory => None,
        (OnError::Skip { .. }, None) if output.remote.is_some() => {
            let url = output.remote.as_ref().expect("checked");
            let name = url.name();
            let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
            let errors = url.with_key(format!("{}{stem}.errors.parquet", url.parent_prefix()));
            Some(OutputTarget::parse(&errors.to_string(), args.overwrite)?)
        }
        (OnError::Skip { .. }, None) => {
            let stem = output
                .path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("output");
            Some(OutputTarget::parse(
                &output
                    .path
                    .with_file_name(format!("{stem}.errors.parquet"))
                    .display()
                    .to_string(),
                args.overwrite,
            )?)
        }
    };
    if let Some(e) = &errors {
        if e.kind != crate::sink::OutputKind::Parquet {
            bail!("--errors {} must be a Parquet file", e.path.display());
        }
        if e.path == output.path {
            bail!("--errors and --output name the same file");
        }
    }
    Ok((on_error, errors))
}

/// `--shard`, and the options only directory outputs take (or refuse).
fn directory_options(args: &ScoreArgs, directory: bool, select: &SelectSpec) -> Result<Shard> {
    let shard = match &args.shard {
        Some(spec) => Shard::parse(spec, &std::env::vars().collect())?,
        None => Shard::WHOLE,
    };
    if !directory {
        let given = [
            (args.shard.is_some(), "--shard"),
            (args.resume, "--resume"),
            (args.rows_per_file.is_some(), "--rows-per-file"),
        ];
        if let Some((_, flag)) = given.iter().find(|(on, _)| *on) {
            bail!("{flag} is for directory outputs: end --output with / (scores/) to write part files");
        }
    }
    if directory && select.limit.is_some() {
        bail!("--limit is for a quick look at a file output; a directory output is a complete job (use --sample for a smaller one)");
    }
    if directory && args.errors.is_some() {
        bail!("a directory output keeps rejected rows in its _errors/ directory; drop --errors");
    }
    if args.rows_per_file == Some(0) {
        bail!("--rows-per-file must be at least 1");
    }
    Ok(shard)
}

/// Usage errors (exit 2) come out of here; nothing is opened but the inputs' names.
pub fn score_config(args: &ScoreArgs) -> Result<ScoreConfig> {
    let (threads, batch_size) = performance(args)?;
    // Before the first request: listing the inputs opens their buckets.
    crate::storage::configure(storage_settings(args)?);
    if let Some(p) = args.price_per_hour {
        if !(p.is_finite() && p >= 0.0) {
            bail!("--price-per-hour must be a non-negative number of USD, got {p}");
        }
    }
    let summary = match args.summary.as_str() {
        "stderr" => SummaryTo::Stderr,
        "-" | "stdout" => SummaryTo::Stdout,
        "none" => SummaryTo::Nowhere,
        other => bail!("--summary {other:?}: expected stderr, - (stdout) or none"),
    };
    let date = match &args.date {
        Some(d) => RunDate::parse(d)?,
        None => RunDate::today(),
    };
    let dated = |s: &str| expand_date(s, &date);
    let output = OutputTarget::parse(&dated(&args.output), args.overwrite)?;
    if output.kind == crate::sink::OutputKind::Stdout && summary == SummaryTo::Stdout {
        bail!("--output - and --summary - both want stdout; send the summary to stderr or a file");
    }
    let (on_error, errors) = bad_rows(args, &output, &dated)?;
    let directory = output.kind == OutputKind::Directory;
    let select = select_spec(&args.select, &dated)?;
    let shard = directory_options(args, directory, &select)?;
    let inputs = expand_inputs(
        &args
            .input
            .input
            .iter()
            .map(|i| dated(i))
            .collect::<Vec<_>>(),
        args.input.csv.input_format,
    )?;
    if directory && inputs.iter().any(|f| f.is_stream()) {
        bail!("a directory output reads its inputs again to resume, which standard input cannot do; write a file output (or -), or save the input to a file");
    }
    Ok(ScoreConfig {
        select,
        shard,
        resume: args.resume,
        rows_per_file: args.rows_per_file,
        models: model_specs(&args.model, &args.mapping)?,
        on_error,
        errors,
        inputs,
        csv: csv_options(&args.input.csv)?
            .with_bad_rows_set_aside(matches!(on_error, OnError::Skip { .. })),
        output,
        batch_size,
        threads,
        price_per_hour: args.price_per_hour,
        summary_json: args
            .summary_json
            .as_ref()
            .map(|p| PathBuf::from(dated(&p.display().to_string()))),
        summary,
        quiet: args.quiet,
        progress_every: match args.progress_every {
            None => crate::pipeline::progress::LOG_EVERY,
            Some(s) if s.is_finite() && s > 0.0 => std::time::Duration::from_secs_f64(s),
            Some(s) => bail!("--progress-every {s}: a positive number of seconds"),
        },
        check: args.check,
        job_file: args.job_file.clone(),
        drift: drift_options(args, &dated)?,
    })
}

/// `batchinfer profile`: a `score` run with no output whose summary JSON is the
/// profile file.
pub fn profile_config(args: &crate::cli::ProfileArgs) -> Result<ScoreConfig> {
    use clap::Parser;
    let blank = ["batchinfer", "score", "-m", "-", "-i", "-", "-o", "-"];
    let crate::cli::Command::Score(mut score) = crate::cli::Cli::try_parse_from(blank)?.command
    else {
        unreachable!("parsed as score")
    };
    score.model = args.model.clone();
    score.input = crate::cli::InputArgs {
        input: args.input.input.clone(),
        csv: args.input.csv.clone(),
    };
    score.mapping = args.mapping.clone();
    score.select = args.select.clone();
    score.on_error = args.on_error.clone();
    score.batch_size = args.batch_size;
    score.threads = args.threads;
    score.quiet = args.quiet;
    score.summary_json = Some(args.output.clone());
    // Standard output is not the output here: the summary may go there.
    score.output = "profile.parquet".into();
    let mut cfg = score_config(&score)?;
    if cfg.select.limit.is_some() {
        bail!("--limit profiles the first rows only; a baseline should describe the whole reference data (use --sample for a smaller one)");
    }
    cfg.output = OutputTarget::discard();
    cfg.errors = None;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(features: &[&str], input_map: &[&str]) -> MappingArgs {
        MappingArgs {
            features: features.iter().map(|s| s.to_string()).collect(),
            input_map: input_map.iter().map(|s| s.to_string()).collect(),
            keep: vec!["id".into()],
            keep_all: false,
            select_outputs: vec!["b:probabilities".into()],
            as_list: vec!["probabilities".into()],
            raw_score: false,
            iterations: None,
        }
    }

    fn models(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scoped_mappings_go_to_their_model_and_the_rest_to_all_others() {
        let specs = model_specs(
            &models(&["a=m/a.onnx", "b=m/b.onnx", "c=c.onnx"]),
            &mapping(&["x,y", "b:p,q", "b:r", "a:b:c"], &["c:in=u,v"]),
        )
        .unwrap();
        let names: Vec<_> = specs.iter().map(|s| s.name.as_deref().unwrap()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(specs[0].path, PathBuf::from("m/a.onnx"));
        // `a:b:c` is for model a, whose columns are `b:c`.
        assert_eq!(specs[0].mapping.features, Some(vec!["b:c".to_string()]));
        assert_eq!(
            specs[1].mapping.features,
            Some(vec!["p".into(), "q".into(), "r".into()])
        );
        assert_eq!(
            specs[2].mapping.features, None,
            "c has a mapping of its own"
        );
        assert_eq!(
            specs[2].mapping.input_map,
            vec![("in".to_string(), vec!["u".to_string(), "v".to_string()])]
        );
        assert!(specs.iter().all(|s| s.mapping.keep == ["id"]));
        assert_eq!(specs[0].outputs, None);
        assert_eq!(specs[1].outputs, Some(vec!["probabilities".to_string()]));
        assert!(specs.iter().all(|s| s.as_list == ["probabilities"]));
    }

    #[test]
    fn one_model_may_be_unnamed_and_paths_may_hold_equals_signs() {
        let specs = model_specs(&models(&["dir/x=1.onnx"]), &mapping(&["a:b"], &[])).unwrap();
        assert_eq!(specs[0].name, None);
        assert_eq!(specs[0].path, PathBuf::from("dir/x=1.onnx"));
        assert_eq!(specs[0].mapping.features, Some(vec!["a:b".to_string()]));
        assert!(model_specs(&models(&["a.onnx", "b=b.onnx"]), &mapping(&[], &[])).is_err());
        assert!(model_specs(&models(&["b=a.onnx", "b=b.onnx"]), &mapping(&[], &[])).is_err());
        assert!(model_specs(&models(&["a=x.onnx"]), &mapping(&["f"], &["in=f"])).is_err());
    }
}
